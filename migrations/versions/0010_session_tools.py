"""Tools per session and trusted MCP server commands.

``sessions.tools`` keeps the tools a session may use: NULL follows the configuration
(``tools.enabled``, every offered tool), a JSON list names canonical ``server.tool`` globs
(``[]``: no tools in this session). Added with plain ALTER TABLE on both backends, so the
table is not rebuilt. ``tool_server_trust`` holds, per user, the hash of each stdio MCP
server command line the user confirmed before it first ran; a changed command line has
another hash and asks again. On PostgreSQL it gets row-level security like every user's
table.

Revision ID: 0010_session_tools
Revises: 0004_chat_setup
Create Date: 2026-11-30 14:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engine.teams import rls

revision: str = '0010_session_tools'
down_revision: str | None = '0004_chat_setup'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column('sessions', sa.Column('tools', sa.JSON(), nullable=True))
    op.create_table('tool_server_trust',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('server', sa.String(length=200), nullable=False),
    sa.Column('digest', sa.String(length=64), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_tool_server_trust_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tool_server_trust')),
    sa.UniqueConstraint('user_id', 'server', 'digest', name=op.f('uq_tool_server_trust_user_id'))
    )
    op.create_index(op.f('ix_tool_server_trust_user_id'), 'tool_server_trust', ['user_id'], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        rls.install_own_table(op.execute, "tool_server_trust")
        op.execute("GRANT USAGE, SELECT ON SEQUENCE tool_server_trust_id_seq TO "
                   f"{rls.MEMBER_ROLE}")


def downgrade() -> None:
    op.drop_index(op.f('ix_tool_server_trust_user_id'), table_name='tool_server_trust')
    op.drop_table('tool_server_trust')
    # Plain DROP COLUMN: a batch rebuild of 'sessions' would cascade to its messages.
    op.drop_column('sessions', 'tools')
