"""Who a copy, backup or check runs as, and what that role may see and write.

On SQLite there is no one to ask: the file holds every user and the copy sees them all. On
PostgreSQL the role is ``session_user`` and row-level security decides:

- the schema owner (or a superuser) sees every user's rows once its session sets
  ``parley.copy_all`` (the ``parley_copy`` policy, ``engine/teams/rls.py``); every
  connection these commands open sets it, which gives a member nothing;
- a member sees their own rows, the user list, and collections others shared with them.
  A member's copy or backup therefore holds their own data only, and a copy into
  PostgreSQL as a member writes only their own rows, under the same policies as Parley.

Ids: a member cannot see other users' largest ids, so the id range a copy writes into is
taken from the table's sequence (``reserve_block``): a contiguous block of ``nextval``
values, which needs no more than the ``USAGE`` members hold.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.db.connect import Database, create_engine
from engine.errors import DatabaseError
from engine.teams.rls import COPY_ALL_SETTING


@dataclass(frozen=True)
class Access:
    backend: str
    role: str | None = None  # session_user (PostgreSQL)
    user_id: int | None = None  # that role's users.id, when it is a user
    sees_all: bool = True  # SQLite, a superuser, or the schema owner

    def describe(self) -> str:
        if self.backend != "postgresql":
            return "the whole database"
        if self.sees_all:
            return f"every user's data (as '{self.role}', the database owner)"
        return f"only the data of '{self.role}' (a team member: row-level security)"


def open_database(url: str, **kwargs: Any) -> Database:
    """A ``Database`` whose PostgreSQL connections ask to see every user (granted to the
    schema owner only)."""
    engine = create_engine(url, **kwargs)
    if engine.dialect.name == "postgresql":
        @event.listens_for(engine.sync_engine, "connect")
        def _copy_all(dbapi_conn: Any, _record: Any) -> None:
            # on the driver's own connection, outside any transaction: a setting made in
            # the adapter's implicit transaction would be rolled back with it
            async def _set(conn: Any) -> None:
                await conn.execute(f"SELECT set_config('{COPY_ALL_SETTING}', 'on', false)")

            dbapi_conn.run_async(_set)
    return Database(engine)


async def access(conn: AsyncConnection) -> Access:
    """What this connection's role may see (``open_database`` connections)."""
    if conn.dialect.name != "postgresql":
        return Access(conn.dialect.name)
    role = str(await conn.scalar(text("SELECT session_user")))
    uid = await conn.scalar(text("SELECT id FROM users WHERE name = session_user")) \
        if await _has(conn, "users") else None
    if await conn.scalar(text("SELECT rolsuper OR rolbypassrls FROM pg_roles "
                              "WHERE rolname = session_user")):
        return Access("postgresql", role, uid, True)
    if await conn.scalar(text("SELECT to_regprocedure('parley_copy_all()') IS NOT NULL")):
        all_ = bool(await conn.scalar(text("SELECT parley_copy_all()")))
    else:  # a schema being created by this very copy: the creator owns it
        all_ = not await _has(conn, "users") or bool(await conn.scalar(text(
            "SELECT pg_has_role(session_user, relowner, 'MEMBER') FROM pg_class "
            "WHERE oid = 'users'::regclass")))
    return Access("postgresql", role, int(uid) if uid is not None else None, all_)


async def _has(conn: AsyncConnection, table: str) -> bool:
    return bool(await conn.scalar(text("SELECT to_regclass(:t) IS NOT NULL"), {"t": table}))


async def sequence_of(conn: AsyncConnection, table: str, column: str) -> str | None:
    if conn.dialect.name != "postgresql":
        return None
    return await conn.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"),
                             {"t": table, "c": column})


async def sequence_used(conn: AsyncConnection, seq: str) -> bool:
    """Whether the sequence ever gave out an id (a table nobody wrote to has not)."""
    return bool(await conn.scalar(text(f"SELECT is_called FROM {seq}")))


async def reserve_block(conn: AsyncConnection, seq: str, size: int, *, attempts: int = 5) -> int:
    """Take ``size`` consecutive ids from ``seq``; returns the id before the first.

    One statement of ``nextval`` calls: concurrent writers may interleave with it, so the
    block is checked to be contiguous and taken again if it is not (the ids a broken
    block burned are gaps, as after any rolled-back insert)."""
    for _ in range(attempts):
        low, high = (await conn.execute(text(
            f"SELECT min(v), max(v) FROM (SELECT nextval('{seq}') AS v "
            "FROM generate_series(1, :n)) s"), {"n": size})).one()
        if int(high) - int(low) + 1 == size:
            return int(low) - 1
    raise DatabaseError(f"could not reserve {size} consecutive ids from {seq}: others are "
                        "inserting fast", "run the same command again")
