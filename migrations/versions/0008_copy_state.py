"""Copy state: how far a ``parley db copy`` into this database got, for resuming it.

``parley_copy_state`` holds one row per (copy, table): the id offset chosen for the table,
the last source key written and the counts. ``parley_copy_map`` holds the few ids that do
not follow the offset (rows a ``--merge`` matched to rows already here). Each batch of rows
and its state row commit in one transaction, so a copy killed at any point resumes exactly.
New tables only: no batch rebuild, so the FTS5 triggers and vec0 tables are untouched.

PostgreSQL teams (``engine/teams/rls.py``): members may write copy state (a member copies
their own data in), and every forced table gets the ``parley_copy`` policy through
``rls.install_copy_policies``: the schema owner, and only while it says so for its session
(``parley.copy_all``, which ``db copy``, ``backup`` and ``db check`` set), reads and writes
every user's rows. Members never pass it.

Revision ID: 0008_copy_state
Revises: 0003_library_sync
Create Date: 2026-11-30 11:20:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engine.teams import rls

revision: str = '0008_copy_state'
down_revision: str | None = '0003_library_sync'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'parley_copy_state',
        sa.Column('copy_id', sa.String(length=64), nullable=False),
        sa.Column('table_name', sa.String(length=128), nullable=False),
        sa.Column('id_offset', sa.BigInteger(), nullable=False),
        sa.Column('id_reserved', sa.BigInteger(), nullable=True),
        sa.Column('last_key', sa.Text(), nullable=True),
        sa.Column('copied', sa.BigInteger(), nullable=False),
        sa.Column('skipped', sa.BigInteger(), nullable=False),
        sa.Column('done', sa.Boolean(), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('copy_id', 'table_name', name=op.f('pk_parley_copy_state')))
    op.create_table(
        'parley_copy_map',
        sa.Column('copy_id', sa.String(length=64), nullable=False),
        sa.Column('table_name', sa.String(length=128), nullable=False),
        sa.Column('old_id', sa.BigInteger(), nullable=False),
        sa.Column('new_id', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('copy_id', 'table_name', 'old_id',
                                name=op.f('pk_parley_copy_map')))
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        rls.install_copy_policies(op.execute, bind.execute(sa.text(
            "SELECT current_schema()")).scalar())


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        rls.uninstall_copy_policies(op.execute, bind.execute(sa.text(
            "SELECT current_schema()")).scalar())
    op.drop_table('parley_copy_map')
    op.drop_table('parley_copy_state')
