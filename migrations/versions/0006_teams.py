"""Teams: a key per user, collections shared by their owner, row-level security.

- ``user_keys``: each user's key check value, KDF salt and unfinished rotation, moved here
  from the database-wide ``parley_meta`` (every existing user gets the current values:
  their rows were all under the one key until now).
- ``collection_shares``: a collection shared by its owner with one user or with everyone.
- PostgreSQL only: row-level security on every user-owned table, the ``parley_member``
  group role and its grants (``engine/teams/rls.py``). Nothing of it on SQLite.

Revision ID: 0006_teams
Revises: 0002
Create Date: 2026-11-30 11:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engine.teams import rls

revision: str = '0006_teams'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_META_FIELDS = {"key_check": "key_check", "kdf_salt": "kdf_salt", "key_rotation": "rotation"}


def _other_user_tables() -> tuple[str, ...]:
    """Tables with a user_id that earlier revisions added and rls does not list by name."""
    inspector = sa.inspect(op.get_bind())
    known = {*rls.FORCED_TABLES, "users"}
    return tuple(sorted(
        name for name in inspector.get_table_names() if name not in known
        and "user_id" in {c["name"] for c in inspector.get_columns(name)}))


def upgrade() -> None:
    op.create_table('user_keys',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key_check', sa.Text(), nullable=True),
    sa.Column('kdf_salt', sa.String(length=64), nullable=True),
    sa.Column('rotation', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_user_keys_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', name=op.f('pk_user_keys'))
    )
    op.create_table('collection_shares',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('collection_id', sa.Integer(), nullable=False),
    sa.Column('owner_id', sa.Integer(), nullable=False),
    sa.Column('grantee_id', sa.Integer(), nullable=True),
    sa.Column('can_write', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['collection_id'], ['collections.id'], name=op.f('fk_collection_shares_collection_id_collections'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['grantee_id'], ['users.id'], name=op.f('fk_collection_shares_grantee_id_users'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['owner_id'], ['users.id'], name=op.f('fk_collection_shares_owner_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_collection_shares'))
    )
    with op.batch_alter_table('collection_shares', schema=None) as batch_op:
        batch_op.create_index('ix_collection_shares_collection_grantee', ['collection_id', 'grantee_id'], unique=True)
        batch_op.create_index(batch_op.f('ix_collection_shares_grantee_id'), ['grantee_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_collection_shares_owner_id'), ['owner_id'], unique=False)

    bind = op.get_bind()
    meta = dict(bind.execute(sa.text(
        "SELECT key, value FROM parley_meta WHERE key IN ('key_check', 'kdf_salt', "
        "'key_rotation')")).all())
    if meta:
        values = {_META_FIELDS[k]: v for k, v in meta.items()}
        for field in _META_FIELDS.values():
            values.setdefault(field, None)
        bind.execute(sa.text(
            "INSERT INTO user_keys (user_id, key_check, kdf_salt, rotation) "
            "SELECT id, :key_check, :kdf_salt, :rotation FROM users"), values)
        bind.execute(sa.text("DELETE FROM parley_meta WHERE key IN ('key_check', 'kdf_salt', "
                             "'key_rotation')"))
    if bind.dialect.name == "postgresql":
        rls.install(op.execute, bind.execute(sa.text("SELECT current_schema()")).scalar(),
                    _other_user_tables())


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        rls.uninstall(op.execute, bind.execute(sa.text("SELECT current_schema()")).scalar(),
                      _other_user_tables())
    # The database-wide key becomes the first user's again (the only one SQLite has).
    first = bind.execute(sa.text(
        "SELECT key_check, kdf_salt, rotation FROM user_keys ORDER BY user_id LIMIT 1")).first()
    if first is not None:
        for key, value in zip(_META_FIELDS, first, strict=True):
            if value is not None:
                bind.execute(sa.text("INSERT INTO parley_meta (key, value) VALUES (:k, :v)"),
                             {"k": key, "v": value})
    with op.batch_alter_table('collection_shares', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_collection_shares_owner_id'))
        batch_op.drop_index(batch_op.f('ix_collection_shares_grantee_id'))
        batch_op.drop_index('ix_collection_shares_collection_grantee')
    op.drop_table('collection_shares')
    op.drop_table('user_keys')
