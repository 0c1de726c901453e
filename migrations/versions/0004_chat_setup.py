"""Chat setup: session settings (RAG switch, parameters), personas, attachments, and the
context windows model servers report.

Sessions gain two nullable columns (None keeps the configured value), added with plain
ALTER TABLE on both backends: SQLite needs no table rebuild for that, so nothing else on
the table is touched. Existing sessions keep their settings; a session that names no
collections now searches all of its user's collections instead of only ``default``.

On PostgreSQL the per-user tables (personas, attachments) get row-level security like the
other users' tables; ``model_info`` holds what servers say about their models, no user's
data, so team members share it as a cache (read and refresh) without a row policy.

Revision ID: 0004_chat_setup
Revises: 0005_tool_runs
Create Date: 2026-11-30 11:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engine.teams import rls

revision: str = '0004_chat_setup'
down_revision: str | None = '0005_tool_runs'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('sessions', sa.Column('rag', sa.Boolean(), nullable=True))
    op.add_column('sessions', sa.Column('params', sa.JSON(), nullable=True))
    op.create_table('personas',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('provider', sa.String(length=200), nullable=True),
    sa.Column('model', sa.String(length=200), nullable=True),
    sa.Column('system_prompt', sa.Text(), nullable=True),
    sa.Column('collections', sa.JSON(), nullable=False),
    sa.Column('rag', sa.Boolean(), nullable=True),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('first_message', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_personas_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_personas')),
    sa.UniqueConstraint('user_id', 'name', name=op.f('uq_personas_user_id'))
    )
    op.create_table('attachments',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('message_id', sa.Integer(), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('pages', sa.JSON(), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_attachments_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_attachments_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_attachments'))
    )
    op.create_index(op.f('ix_attachments_message_id'), 'attachments', ['message_id'], unique=False)
    op.create_table('model_info',
    sa.Column('provider', sa.String(length=200), nullable=False),
    sa.Column('model', sa.String(length=200), nullable=False),
    sa.Column('base_url', sa.Text(), nullable=False),
    sa.Column('context_window', sa.Integer(), nullable=True),
    sa.Column('source', sa.String(length=64), nullable=True),
    sa.Column('checked_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('provider', 'model', name=op.f('pk_model_info'))
    )
    if op.get_bind().dialect.name == "postgresql":
        for table in ("personas", "attachments"):
            rls.install_own_table(op.execute, table)
            op.execute(f"GRANT USAGE, SELECT ON SEQUENCE {table}_id_seq TO {rls.MEMBER_ROLE}")
        op.execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON model_info TO {rls.MEMBER_ROLE}")


def downgrade() -> None:
    op.drop_table('model_info')
    op.drop_index(op.f('ix_attachments_message_id'), table_name='attachments')
    op.drop_table('attachments')
    op.drop_table('personas')
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+ has it): a batch rebuild would drop and
    # re-create 'sessions', and with foreign keys on, dropping it cascades to every message.
    op.drop_column('sessions', 'params')
    op.drop_column('sessions', 'rag')
