"""The ``sqlite+aiosqlean`` SQLAlchemy dialect: aiosqlite over sqlean.py's SQLite.

Python's own ``sqlite3`` is often built without extension loading (pyenv, macOS), so it
cannot load sqlite-vec. sqlean.py ships SQLite 3.50 with loading enabled. This dialect
reuses SQLAlchemy's aiosqlite adapter but hands it sqlean's module, so the DB-API exception
classes come from sqlean and ``IntegrityError`` and friends are still mapped to
``sqlalchemy.exc`` (a test guards this: the adapter constructor is not public API).

Every new connection loads sqlite-vec and sets the pragmas Parley relies on.
"""

from __future__ import annotations

import types
from typing import Any

import aiosqlite
import sqlean
import sqlite_vec
from sqlalchemy.dialects import registry
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_dbapi,
    SQLiteDialect_aiosqlite,
)

_DBAPI_EXCEPTIONS = ("Warning", "Error", "InterfaceError", "DatabaseError", "DataError",
                     "OperationalError", "IntegrityError", "InternalError", "ProgrammingError",
                     "NotSupportedError")

# busy_timeout is set per engine through connect_args (see engine/db/connect.py).
_PRAGMAS = ("journal_mode=WAL", "synchronous=NORMAL", "foreign_keys=ON", "secure_delete=ON")


def _connect(database: str, *, iter_chunk_size: int = 64, busy_timeout_ms: int = 5000,
             **kwargs: Any) -> aiosqlite.Connection:
    def connector() -> Any:  # runs in aiosqlite's worker thread
        kwargs.setdefault("check_same_thread", False)
        conn = sqlean.connect(str(database), **kwargs)
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.enable_load_extension(False)
        conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        for pragma in _PRAGMAS:
            conn.execute(f"PRAGMA {pragma}")
        return conn

    return aiosqlite.Connection(connector, iter_chunk_size)


class SQLeanAioDialect(SQLiteDialect_aiosqlite):
    """aiosqlite's dialect with sqlean as the SQLite library."""

    supports_statement_cache = True

    @classmethod
    def import_dbapi(cls) -> Any:
        driver = types.SimpleNamespace(
            __version__=aiosqlite.__version__,
            Connection=aiosqlite.Connection,
            connect=_connect,
            sqlite_version=sqlean.sqlite_version,
            sqlite_version_info=sqlean.sqlite_version_info,
            **{name: getattr(sqlean, name) for name in _DBAPI_EXCEPTIONS},
        )
        return AsyncAdapt_aiosqlite_dbapi(driver, sqlean)


registry.register("sqlite.aiosqlean", __name__, "SQLeanAioDialect")
