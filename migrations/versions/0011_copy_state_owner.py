"""Copy state belongs to the user who ran the copy.

``parley_copy_state`` and ``parley_copy_map`` get a ``user_id`` (who ran the copy into this
database; cascades when that user is purged). On PostgreSQL both tables get the own-rows
policy (``rls.install_own_table``): a member reads, resumes and deletes only their own
copies' progress and id maps, and the schema owner's ``parley_copy`` policy lets ``db
copy``/``db check`` run by the owner see every copy. NULL is a copy run by a role with no
user row on the target (the owner filling a new database, a superuser): only the owner's
copy policy admits it, never a member.

Existing rows (copies that ran before this revision) cannot tell who ran them: they are
given to the schema owner's user on PostgreSQL (NULL where the owner has none), to nobody
(NULL) on SQLite, where there are no roles and the file's reader sees every row anyway.

SQLite: batch mode rebuilds these two tables only (no triggers or virtual tables on them).

Revision ID: 0011_copy_state_owner
Revises: 0008_copy_state
Create Date: 2026-11-30 17:30:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engine.teams import rls

revision: str = '0011_copy_state_owner'
down_revision: str | None = '0008_copy_state'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = rls.COPY_STATE_TABLES  # parley_copy_state, parley_copy_map

# the user row of the role owning the schema's tables (the team's owner), if it has one
_OWNER_UID = ("(SELECT u.id FROM users u JOIN pg_roles r ON r.rolname = u.name "
              "WHERE r.oid = (SELECT relowner FROM pg_class WHERE oid = 'users'::regclass))")


def upgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
            batch.create_foreign_key(op.f(f'fk_{table}_user_id_users'), 'users',
                                     ['user_id'], ['id'], ondelete='CASCADE')
        if postgres:
            op.execute(f"UPDATE {table} SET user_id = {_OWNER_UID}")
            rls.install_own_table(op.execute, table)


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in reversed(TABLES):
        if postgres:
            for policy in ("parley_copy", "parley_own"):
                op.execute(f"DROP POLICY IF EXISTS {policy} ON {table}")
            op.execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
            op.execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
        with op.batch_alter_table(table) as batch:
            batch.drop_constraint(op.f(f'fk_{table}_user_id_users'), type_='foreignkey')
            batch.drop_column('user_id')
