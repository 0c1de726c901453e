"""Migrated databases for tests, without running every migration for every test.

Bringing an empty database to head runs every Alembic revision (about 0.3 CPU-seconds on
SQLite and 0.5 on PostgreSQL, client and server together), and most database tests start
that way. So each test process migrates one template per backend, through the real
``Engine.upgrade``, and a test's database becomes a copy of it:

- SQLite: a byte copy of the template file, taken after the engine that migrated it was
  closed (so its WAL is checkpointed into the main file and removed).
- PostgreSQL: ``CREATE DATABASE name TEMPLATE template``, which copies every object of the
  template (tables, indexes, functions, row-level security policies, grants, extensions).
  The group role ``parley_member`` is cluster-wide and is made by the template's migration.
  The pg_textsearch BM25 index, whose in-memory part is keyed by the index's OID, is
  made anew in each copy.

The copy is taken only where the migration would have done exactly that: a fresh test
database (an SQLite file that does not exist yet; a PostgreSQL database made by
``PostgresServer.create_database`` that has no relation and no extension yet), migrated
as the same role that migrated the template. Anything else, and the tests that test the
migrations themselves, take the real path.
"""

from __future__ import annotations

import atexit
import shutil
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import asyncpg
from sqlalchemy.engine import make_url

from engine import Engine, Settings, load_settings
from engine.db import pg_textsearch
from engine.db.connect import sqlite_path

if TYPE_CHECKING:
    from tests.conftest import PostgresServer

# sqlalchemy URL of a fresh test database -> the server that made it
_fresh: dict[str, PostgresServer] = {}
_sqlite_template: list[Path] = []


def register_fresh(url: str, server: PostgresServer) -> None:
    _fresh[url] = server


def forget_fresh(url: str) -> None:
    _fresh.pop(url, None)


async def upgrade(settings: Settings) -> None:
    """Bring the database to head, as an operator runs ``parley db upgrade``."""
    async with Engine(settings, migrate=False) as admin:
        await admin.upgrade()


async def migrate_from_template(settings: Settings) -> bool:
    """Make the database a copy of a migrated template; False where that would not be
    what a migration does (the caller then migrates for real)."""
    url = settings.database_url()
    path = sqlite_path(url)
    if path is not None:
        return await _sqlite_copy(path)
    server = _fresh.get(url)
    if server is None:
        return False
    return await _postgres_copy(server, make_url(url).database or "")


async def _sqlite_copy(path: Path) -> bool:
    if path.exists() or not path.parent.is_dir():
        return False
    if not _sqlite_template:
        folder = Path(tempfile.mkdtemp(prefix="parley-template-"))
        atexit.register(shutil.rmtree, folder, True)
        template = folder / "template.db"
        await upgrade(load_settings(overrides={"database": {"url": f"sqlite:///{template}"},
                                               "crypto": {"key_file": str(folder / "key")}},
                                    environ={}))
        leftovers = [p.name for p in folder.iterdir() if p.name not in ("template.db", "key")]
        assert not leftovers, f"the migrated template left {leftovers} beside it"
        _sqlite_template.append(template)
    shutil.copyfile(_sqlite_template[0], path)
    return True


async def _postgres_copy(server: PostgresServer, name: str) -> bool:
    template = await server.template()
    admin = await asyncpg.connect(server._asyncpg_url(name))
    try:
        used = await admin.fetchval(
            "SELECT (SELECT count(*) FROM pg_class c JOIN pg_namespace n "
            "ON n.oid = c.relnamespace WHERE n.nspname NOT IN "
            "('pg_catalog', 'information_schema', 'pg_toast')) "
            "+ (SELECT count(*) FROM pg_extension WHERE extname <> 'plpgsql')")
    finally:
        await admin.close()
    if used:
        return False
    conn = await asyncpg.connect(server._asyncpg_url("postgres"))
    try:
        try:
            await conn.execute(f'DROP DATABASE "{name}"')  # refused while anyone is connected
        except asyncpg.ObjectInUseError:
            return False
        try:
            await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
        except asyncpg.PostgresError:
            await conn.execute(f'CREATE DATABASE "{name}"')  # as it was: migrate it for real
            return False
    finally:
        await conn.close()
    await _own_bm25_index(server, name)
    return True


async def _own_bm25_index(server: PostgresServer, name: str) -> None:
    """pg_textsearch keeps an index's recent rows in shared memory by the index's OID, and a
    copied database has its template's OIDs: so every copy would write into one memory
    table. The index is made anew in the copy (a new OID), as the migration makes it."""
    conn = await asyncpg.connect(server._asyncpg_url(name))
    try:
        if await conn.fetchval("SELECT to_regclass($1)", pg_textsearch.INDEX) is not None:
            await conn.execute(f"DROP INDEX {pg_textsearch.INDEX}")
            await conn.execute(pg_textsearch.INDEX_DDL)
    finally:
        await conn.close()


async def build_postgres_template(server: PostgresServer) -> str:
    """A database on ``server`` migrated to head by its admin role."""
    name = f"parley_template_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server._asyncpg_url("postgres"))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    folder = Path(tempfile.mkdtemp(prefix="parley-template-"))
    try:
        await upgrade(load_settings(overrides={
            "database": {"url": server.sqlalchemy_url(name)},
            "crypto": {"key_file": str(folder / "key")}}, environ={}))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return name
