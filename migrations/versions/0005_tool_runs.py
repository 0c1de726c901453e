"""Tool runs (encrypted arguments, results and errors) and "always" approvals.

``tool_runs`` keeps every tool call a model asked for, linked to the answer and its
session (both cascade on delete); ``tool_approvals`` keeps the tools a user answered
"always" for. New tables only: no existing table is rebuilt, so SQLite's FTS triggers and
vec0 tables are untouched.

Revision ID: 0005_tool_runs
Revises: 0002
Create Date: 2026-11-30 11:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engine.teams import rls

revision: str = '0005_tool_runs'
down_revision: str | None = '0007_bm25_index'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('tool_runs',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=True),
    sa.Column('message_id', sa.Integer(), nullable=True),
    sa.Column('round', sa.Integer(), nullable=False),
    sa.Column('call_index', sa.Integer(), nullable=False),
    sa.Column('call_id', sa.String(length=128), nullable=False),
    sa.Column('server', sa.String(length=200), nullable=False),
    sa.Column('tool', sa.String(length=200), nullable=False),
    sa.Column('arguments', sa.Text(), nullable=False),
    sa.Column('result', sa.Text(), nullable=True),
    sa.Column('error', sa.Text(), nullable=True),
    sa.Column('result_chars', sa.Integer(), nullable=False),
    sa.Column('truncated', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('decision', sa.String(length=16), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('duration_ms', sa.Float(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], name=op.f('fk_tool_runs_message_id_messages'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['session_id'], ['sessions.id'], name=op.f('fk_tool_runs_session_id_sessions'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_tool_runs_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tool_runs'))
    )
    op.create_index('ix_tool_runs_user_id_session_id', 'tool_runs', ['user_id', 'session_id'], unique=False)
    op.create_index(op.f('ix_tool_runs_message_id'), 'tool_runs', ['message_id'], unique=False)
    op.create_table('tool_approvals',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('tool', sa.String(length=400), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_tool_approvals_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tool_approvals')),
    sa.UniqueConstraint('user_id', 'tool', name=op.f('uq_tool_approvals_user_id'))
    )
    op.create_index(op.f('ix_tool_approvals_user_id'), 'tool_approvals', ['user_id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        for table in ("tool_runs", "tool_approvals"):
            rls.install_own_table(op.execute, table)
            op.execute(f"GRANT USAGE, SELECT ON SEQUENCE {table}_id_seq TO {rls.MEMBER_ROLE}")


def downgrade() -> None:
    op.drop_index(op.f('ix_tool_approvals_user_id'), table_name='tool_approvals')
    op.drop_table('tool_approvals')
    op.drop_index(op.f('ix_tool_runs_message_id'), table_name='tool_runs')
    op.drop_index('ix_tool_runs_user_id_session_id', table_name='tool_runs')
    op.drop_table('tool_runs')
