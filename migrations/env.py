"""Alembic environment: one revision set for SQLite and PostgreSQL.

Parley runs migrations programmatically (``engine/db/schema.py`` passes an open connection in
``config.attributes["connection"]``); the plain ``alembic -c migrations/alembic.ini`` command
works too and reads the URL from ``PARLEY_DATABASE__URL`` or the ini file.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

import pgvector.sqlalchemy  # noqa: F401  (reflection knows the 'vector' type)
from alembic import context
from sqlalchemy.engine import Connection

import engine.db.sqlite_dialect  # noqa: F401  (vec0 needs sqlite-vec loaded)
from engine.db.models import Base

# Objects the migrations create per backend that the models do not describe: FTS5 and vec0
# virtual tables with their shadow tables, PostgreSQL's generated tsvector column and the
# indexes on it and on vectors. Autogenerate must not propose to drop them.
_VIRTUAL_TABLE_PREFIXES = ("chunk_fts", "vec_c")
_BACKEND_INDEX_PREFIXES = ("ix_chunks_tsv", "ix_chunks_bm25", "ix_vec_")


def include_name(name: str | None, type_: str, parent_names: dict[str, Any]) -> bool:
    if name is None:
        return True
    if type_ == "table":
        return not name.startswith(_VIRTUAL_TABLE_PREFIXES)
    if type_ == "column":
        return name != "tsv"
    if type_ == "index":
        return not name.startswith(_BACKEND_INDEX_PREFIXES)
    return True


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=True,  # SQLite can only alter tables by rebuilding them
        include_name=include_name,
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_standalone(url: str) -> None:
    from engine.db.connect import create_engine

    engine = create_engine(url)
    async with engine.connect() as conn:
        await conn.run_sync(_run)
        await conn.commit()
    await engine.dispose()


connection = context.config.attributes.get("connection")
if connection is not None:
    _run(connection)
elif context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported: run against a database")
else:
    url = os.environ.get("PARLEY_DATABASE__URL") or context.config.get_main_option("sqlalchemy.url")
    if not url:
        raise SystemExit("set PARLEY_DATABASE__URL or sqlalchemy.url in the ini file")
    asyncio.run(_run_standalone(url))
