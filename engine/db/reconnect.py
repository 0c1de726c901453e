"""Surviving a database server that goes away (a PostgreSQL restart, a failover, a cut).

What the engine promises, and how:

- **The next operation reconnects.** The pool pings a connection before lending it
  (``pool_pre_ping``); a dead one makes SQLAlchemy drop every pooled connection and open a
  new one. So after a restart nothing stale is ever used twice.
- **An operation in flight fails cleanly.** ``Database.read()``/``write()`` turn a lost
  connection (or a server that does not answer yet) into ``ConnectionLost``, a
  ``DatabaseError`` with a one-line message: front ends show it as a notice, not as a crash.
  A write is one transaction: the server rolls back whatever it had not committed, so a
  write is either all there or not there at all, never half written.
- **Idempotent reads are retried once** (``retry_read`` on read-only verbs such as search
  and listing sessions): the retry gets a fresh connection, so a restart between two
  searches costs the user nothing.
- **Long writers wait and retry.** Ingestion (``wait_until_back``) waits for the server to
  answer again, up to ``database.reconnect_timeout_s``, then writes the same file again
  (writing a file replaces its rows, so a write whose commit did reach the server before the
  connection broke is not duplicated).
"""

from __future__ import annotations

import asyncio
import functools
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from engine.errors import ConnectionLost

if TYPE_CHECKING:
    from engine.db.connect import Database

T = TypeVar("T")

_SERVER_GONE_SQLSTATES = {"57P01", "57P02", "57P03", "08000", "08003", "08006", "08001",
                          "08004"}
"""admin/crash shutdown, cannot connect now (starting or stopping), connection exceptions."""


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` means the server or the connection to it went away (not a bad query)."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, DBAPIError) and current.connection_invalidated:
            return True
        if isinstance(current, ConnectionError | TimeoutError | FileNotFoundError):
            return True  # refused / reset / socket file gone while the server is down
        if isinstance(current, OSError) and "connect" in str(current).lower():
            return True
        sqlstate = getattr(current, "sqlstate", None)
        if isinstance(sqlstate, str) and sqlstate in _SERVER_GONE_SQLSTATES:
            return True
        name = type(current).__name__
        if name in ("ConnectionDoesNotExistError", "InterfaceError") and \
                "closed" in str(current).lower():
            return True
        nxt = getattr(current, "orig", None)
        current = nxt if isinstance(nxt, BaseException) else (current.__cause__
                                                               or current.__context__)
    return False


def lost(url: str, exc: BaseException, *, writing: bool) -> ConnectionLost:
    """The ``ConnectionLost`` to raise for ``exc``."""
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()
    reason = detail[0][:160] if detail and detail[0] else type(exc).__name__
    if writing:
        return ConnectionLost(
            f"lost the connection to the database {url} during a write ({reason}); "
            "it was rolled back, nothing of it was saved",
            "do it again when the server is back: Parley reconnects by itself")
    return ConnectionLost(f"lost the connection to the database {url} ({reason})",
                          "try again when the server is back: Parley reconnects by itself")


async def wait_until_back(db: Database, timeout_s: float) -> bool:
    """Poll the server until it answers ``SELECT 1`` on a new connection (True), or until
    ``timeout_s`` has passed (False). Backs off from 0.25 s to 2 s between attempts."""
    deadline = time.monotonic() + max(timeout_s, 0.0)
    delay = 0.25
    # Pooled connections are suspect: one whose server process has not yet handled the
    # shutdown can still answer a ping while the server refuses new ones. Only a new
    # connection proves the server is back.
    await db.engine.dispose()
    while True:
        try:
            async with db.engine.connect() as conn:
                await conn.execute(text("SELECT 1"))
            return True
        except Exception as exc:  # noqa: BLE001  (anything but "it answers" means not yet)
            if not is_disconnect(exc):
                raise
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return False
        await asyncio.sleep(min(delay, remaining))
        delay = min(delay * 2, 2.0)


READ_RETRY_WAIT_S = 15.0
"""How long a read-only verb cut by a lost connection waits for the server before its one
retry (a restart takes a few seconds; a user waiting on a search should not wait longer)."""


def retry_read(method: Callable[..., Awaitable[T]]) -> Callable[..., Awaitable[T]]:
    """Run a read-only verb again, once, when the connection was lost under it, after
    waiting (up to ``READ_RETRY_WAIT_S``) for the server to answer: the pool has dropped its
    dead connections by then, so the retry reconnects. If the server is still down, the
    retry's own ``ConnectionLost`` is what the caller sees. For methods of services that
    hold the database as ``db`` or their engine as ``_engine``."""

    @functools.wraps(method)
    async def wrapper(*args: Any, **kwargs: Any) -> T:
        try:
            return await method(*args, **kwargs)
        except ConnectionLost:
            db = _database_of(args[0]) if args else None
            if db is not None:
                await wait_until_back(db, READ_RETRY_WAIT_S)
            return await method(*args, **kwargs)

    return wrapper


def _database_of(service: object) -> Database | None:
    db = getattr(service, "db", None)
    if db is None:
        db = getattr(getattr(service, "_engine", None), "db", None)
    return db if hasattr(db, "engine") else None
