"""Where a user's key facts live: the check value, KDF salt and rotation state.

From schema ``0006_teams`` on they belong to the user (``user_keys``), so members of one
PostgreSQL database each have their own key. An older database (an SQLite file about to be
upgraded) still keeps them database-wide in ``parley_meta``: the key is checked against
those before the upgrade, and the upgrade hands them to every existing user.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import inspect, select

from engine.db import models as m
from engine.db.connect import Database
from engine.keys.crypto import META_KDF_SALT, META_KEY_CHECK

META_ROTATION = "key_rotation"
_FIELDS = {META_KEY_CHECK: "key_check", META_KDF_SALT: "kdf_salt", META_ROTATION: "rotation"}


async def per_user(db: Database) -> bool:
    """Whether this schema keeps key facts per user (``user_keys`` exists)."""
    async with db.engine.connect() as conn:
        return bool(await conn.run_sync(lambda c: inspect(c).has_table("user_keys")))


async def read(db: Database, user_name: str) -> tuple[int | None, dict[str, str]]:
    """(the user's id or None, their key facts by ``parley_meta`` key name)."""
    if not await per_user(db):
        async with db.read() as s:
            rows = await s.execute(select(m.Meta.key, m.Meta.value)
                                   .where(m.Meta.key.in_(list(_FIELDS))))
            return None, {k: v for k, v in rows.all()}
    async with db.read() as s:
        row = (await s.execute(
            select(m.User.id, m.UserKey.key_check, m.UserKey.kdf_salt, m.UserKey.rotation)
            .outerjoin(m.UserKey, m.UserKey.user_id == m.User.id)
            .where(m.User.name == user_name))).first()
    if row is None:
        return None, {}
    values = dict(zip(_FIELDS, row[1:], strict=True))
    return int(row[0]), {k: v for k, v in values.items() if v is not None}


async def write(db: Database, user_name: str, **fields: Any) -> int:
    """Set key facts (``key_check``, ``kdf_salt``, ``rotation``) of a user, creating the
    user (where allowed) and their row. Returns the user id."""
    from engine.teams.identity import ensure_user

    user_id = await ensure_user(db, user_name)
    async with db.write() as s:
        row = await s.get(m.UserKey, user_id, with_for_update=True)
        if row is None:
            row = m.UserKey(user_id=user_id)
            s.add(row)
        for name, value in fields.items():
            setattr(row, name, value)
    return user_id
