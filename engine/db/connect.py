"""Opening a database: one ``Database`` object over either backend.

The rest of the engine uses ``db.read()`` and ``db.write()`` sessions and never branches on
the backend. On SQLite every write transaction starts with ``BEGIN IMMEDIATE``: a deferred
transaction that reads and then writes fails at once with "database is locked" when another
process committed in between, whatever the busy timeout. Reads use a plain deferred BEGIN
so they never wait for a writer (WAL lets them read the last committed state).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

import engine.db.sqlite_dialect  # noqa: F401  (registers sqlite+aiosqlean)
from engine.errors import ConfigError

_READONLY = "parley_readonly"


def mask_url(url: str) -> str:
    """The URL with its password hidden, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url


def is_driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the database driver's own error, raised as is: asyncpg's errors
    while connecting (a wrong password, say) reach the caller unwrapped by SQLAlchemy."""
    return type(exc).__module__.split(".")[0] == "asyncpg"


def sqlite_path(url: str) -> Path | None:
    """The file behind an SQLite URL (None for other backends or in-memory)."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database)


def create_engine(url: str, *, busy_timeout_ms: int = 5000, pool_size: int = 5,
                  echo: bool = False) -> AsyncEngine:
    """An async engine for ``url`` with Parley's per-backend connection setup."""
    try:
        parsed = make_url(url)
    except Exception:
        raise ConfigError(f"database.url is not a valid database URL: {url!r}",
                          "use sqlite:///PATH or postgresql+asyncpg://USER:PASS@HOST/DB") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        if parsed.drivername != "sqlite+aiosqlean":
            parsed = parsed.set(drivername="sqlite+aiosqlean")
        engine = create_async_engine(
            parsed, echo=echo,
            # the driver must not open transactions itself: the begin event does
            connect_args={"isolation_level": None, "busy_timeout_ms": busy_timeout_ms},
        )
        _install_sqlite_begin(engine)
        return engine
    if backend == "postgresql":
        if parsed.drivername != "postgresql+asyncpg":
            parsed = parsed.set(drivername="postgresql+asyncpg")
        engine = create_async_engine(parsed, echo=echo, pool_size=pool_size, pool_pre_ping=True)
        _install_pgvector_codec(engine)
        _install_cheap_ping(engine)
        return engine
    raise ConfigError(f"unsupported database backend '{backend}' in database.url",
                      "Parley supports SQLite and PostgreSQL")


def _install_sqlite_begin(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "begin")
    def _begin(conn: Any) -> None:
        readonly = conn.get_execution_options().get(_READONLY, False)
        conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")


def _install_pgvector_codec(engine: AsyncEngine) -> None:
    from pgvector.asyncpg import register_vector

    @event.listens_for(engine.sync_engine, "connect")
    def _register(dbapi_conn: Any, _record: Any) -> None:
        # A PostgreSQL without the extension has no 'vector' type: skip, and let the
        # schema check report it with a clear message.
        try:
            dbapi_conn.run_async(register_vector)
        except ValueError:
            pass


def _install_cheap_ping(engine: AsyncEngine) -> None:
    """Ping a pooled connection with one round trip instead of three.

    SQLAlchemy's asyncpg ping wraps its empty statement in BEGIN ... ROLLBACK (for
    pgbouncer's transaction mode); Parley pings before every checkout (see
    ``engine.db.reconnect``) and a search checks out once, so the two extra round trips were
    a fifth of a search's statements. Errors go through the adapter's own translation, so a
    dead connection is still recognised as a disconnect and replaced."""
    dialect = engine.sync_engine.dialect

    def do_ping(dbapi_connection: Any) -> bool:
        try:
            dbapi_connection.await_(dbapi_connection._connection.fetchrow(";"))
        except Exception as error:  # noqa: BLE001  (translated, then raised, just below)
            dbapi_connection._handle_exception(error)
        return True

    dialect.do_ping = do_ping  # type: ignore[method-assign]


class Database:
    """An engine plus the two kinds of session the engine uses."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.backend: str = engine.dialect.name
        self._writer = async_sessionmaker(engine, expire_on_commit=False)
        self._reader = async_sessionmaker(
            engine.execution_options(**{_READONLY: True}), expire_on_commit=False)

    @asynccontextmanager
    async def write(self) -> AsyncIterator[AsyncSession]:
        """A session in one write transaction, committed on success, rolled back on error.
        A lost server connection raises ``ConnectionLost`` (see ``engine.db.reconnect``)."""
        try:
            async with self._writer() as session, session.begin():
                yield session
        except Exception as exc:  # a lost server can surface as the driver's own error
            raise self._lost(exc, writing=True) or exc  # noqa: B904  (the same exception)

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncSession]:
        """A session for reading (no write lock on SQLite). Writes here are an error."""
        try:
            async with self._reader() as session, session.begin():
                yield session
        except Exception as exc:
            raise self._lost(exc, writing=False) or exc  # noqa: B904

    def _lost(self, exc: BaseException, *, writing: bool) -> Exception | None:
        """``ConnectionLost`` when ``exc`` means the PostgreSQL server went away."""
        if self.backend != "postgresql":
            return None
        from engine.db import reconnect
        from engine.errors import ConnectionLost

        if isinstance(exc, ConnectionLost) or not reconnect.is_disconnect(exc):
            return None
        error = reconnect.lost(mask_url(str(self.engine.url)), exc, writing=writing)
        error.__cause__ = exc
        return error

    async def dispose(self) -> None:
        await self.engine.dispose()
