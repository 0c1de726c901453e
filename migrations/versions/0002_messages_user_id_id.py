"""Index messages by (user_id, id) for history search; it replaces the user_id index.

History search reads one user's messages newest first in batches
(``WHERE user_id = ? AND id < ? ORDER BY id DESC LIMIT n``). With this index both backends
walk it directly instead of filtering the primary key or sorting a user_id bitmap, whatever
the planner's statistics say. The single-column index becomes redundant (the composite one
serves every lookup by user_id), so it goes: one index less to maintain on every write.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 20:15:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Plain CREATE/DROP INDEX: SQLite needs no table rebuild for these, so the FTS triggers
    # and vec0 tables are untouched.
    op.create_index('ix_messages_user_id_id', 'messages', ['user_id', 'id'], unique=False)
    op.drop_index('ix_messages_user_id', table_name='messages')


def downgrade() -> None:
    op.create_index('ix_messages_user_id', 'messages', ['user_id'], unique=False)
    op.drop_index('ix_messages_user_id_id', table_name='messages')
