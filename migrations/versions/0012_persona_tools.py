"""Personas keep a tool selection; a session says which persona its tools came from.

``personas.tools`` has the shape and meaning of ``sessions.tools``: NULL follows the
configuration (``tools.enabled``, every offered tool), a JSON list names canonical
``server.tool`` globs (``[]``: no tools). Existing personas get NULL, which is what starting
a chat from them meant before: the configured tools. ``sessions.tools_persona`` names the
persona a session's tools were copied from (``sessions show`` gives it as their source),
NULL once they are set otherwise and for every existing session.

SQLite: ``personas`` in batch mode (adding is a plain ALTER TABLE; dropping rebuilds it: no
table references it, no triggers or virtual tables on it). ``sessions`` with plain ALTER
TABLE both ways, as ``0010_session_tools`` did: a batch rebuild of it would cascade to its
messages. PostgreSQL: both tables' row-level security covers the new columns (policies are
per row, grants per table), so members read and write them with no new grant.

Revision ID: 0012_persona_tools
Revises: 0011_copy_state_owner
Create Date: 2026-11-30 21:10:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0012_persona_tools'
down_revision: str | None = '0011_copy_state_owner'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('personas') as batch:
        batch.add_column(sa.Column('tools', sa.JSON(), nullable=True))
    op.add_column('sessions', sa.Column('tools_persona', sa.String(length=100), nullable=True))


def downgrade() -> None:
    op.drop_column('sessions', 'tools_persona')
    with op.batch_alter_table('personas') as batch:
        batch.drop_column('tools')
