"""Schema versions: where a database stands and moving it with Alembic.

The embedded SQLite default upgrades itself on open (after copying the file aside);
PostgreSQL is never upgraded behind the operator's back: opening an old schema fails with
the command to run.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError

import migrations
from engine.db.connect import Database, mask_url, sqlite_path
from engine.errors import DatabaseError, SchemaOutOfDate, SchemaTooNew
from engine.types import SchemaStatus, SchemaUpgraded

MIGRATIONS_DIR = Path(migrations.__file__).resolve().parent


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "the migrations folder has no revisions"
    return head


def _known_revisions() -> set[str]:
    return {rev.revision for rev in ScriptDirectory.from_config(alembic_config()).walk_revisions()}


def _current(conn: Connection) -> str | None:
    return MigrationContext.configure(conn).get_current_revision()


def _has_tables(conn: Connection) -> bool:
    return bool(inspect(conn).get_table_names())


async def status(db: Database) -> SchemaStatus:
    """The applied and expected revisions."""
    async with db.engine.connect() as conn:
        current = await conn.run_sync(_current)
    head = head_revision()
    return SchemaStatus(backend=db.backend, url=mask_url(str(db.engine.url)), current=current,
                        head=head, up_to_date=current == head)


async def _run(db: Database, action: str, revision: str) -> None:
    def work(conn: Connection) -> None:
        config = alembic_config()
        config.attributes["connection"] = conn
        getattr(command, action)(config, revision)

    try:
        async with db.engine.connect() as conn:
            if db.backend == "sqlite":
                # A batch rebuild drops the old table; with foreign keys on, that would
                # cascade into every row referencing it. The pragma only takes effect
                # outside a transaction; revisions check the keys before committing.
                raw = await conn.get_raw_connection()
                await raw.driver_connection.execute("PRAGMA foreign_keys=OFF")  # type: ignore[union-attr]
            async with conn.begin():
                await conn.run_sync(work)
    except DBAPIError as exc:
        raise _migration_error(db, exc) from None
    finally:
        # Connections opened before the vector extension existed lack pgvector's codec,
        # and the migration's SQLite connection has its foreign keys off.
        await db.engine.dispose()


async def upgrade(db: Database, revision: str = "head") -> None:
    await _run(db, "upgrade", revision)
    if db.backend == "postgresql":
        await ensure_keyword_index(db)


async def ensure_keyword_index(db: Database) -> str | None:
    """At head on PostgreSQL: the pg_textsearch extension and index when the server has it
    (so installing the extension later needs only another ``parley db upgrade``)."""
    from engine.db import pg_textsearch

    if (await status(db)).current != head_revision():
        return None
    try:
        async with db.engine.begin() as conn:
            return await conn.run_sync(pg_textsearch.ensure_index)
    except DBAPIError as exc:
        raise _migration_error(db, exc) from None
    finally:
        pg_textsearch.forget(db.engine.url)


async def downgrade(db: Database, revision: str) -> None:
    await _run(db, "downgrade", revision)


def check_not_newer(current: str | None) -> None:
    if current is not None and current not in _known_revisions():
        raise SchemaTooNew(
            f"the database schema ({current}) was written by a newer version of Parley",
            "upgrade Parley (pip install -U parley), or point database.url at another database")


async def ensure_current(db: Database, *, auto_upgrade_sqlite: bool = True,
                         backup: bool = True) -> SchemaUpgraded | None:
    """Make sure the schema is at head, upgrading the embedded SQLite file if allowed.
    Returns what was upgraded in an existing database (None: nothing, or a new one)."""
    state = await status(db)
    check_not_newer(state.current)
    if state.up_to_date:
        return None
    if db.backend == "sqlite" and auto_upgrade_sqlite:
        path = sqlite_path(str(db.engine.url))
        copy = None
        if backup and path is not None and state.current is not None and path.exists():
            copy = backup_sqlite(path, state.current)
        await upgrade(db)
        if state.current is None:
            return None  # a new database: nothing to tell
        return SchemaUpgraded(state.current, state.head, str(copy) if copy else None)
    async with db.engine.connect() as conn:
        empty = not await conn.run_sync(_has_tables)
    what = "has no Parley schema yet" if empty else f"is at revision {state.current}"
    raise SchemaOutOfDate(f"the database {state.url} {what}; this version needs {state.head}",
                          "run: parley db upgrade")


def backup_sqlite(path: Path, revision: str) -> Path:
    """Copy the database (and its WAL) aside before a migration touches it."""
    import sqlean

    target = path.with_name(f"{path.name}.bak-{revision}")
    if target.exists():
        target.unlink()
    # VACUUM INTO writes a consistent copy even while the WAL holds uncheckpointed pages.
    conn = sqlean.connect(str(path))
    try:
        conn.execute("VACUUM INTO ?", (str(target),))
    finally:
        conn.close()
    return target


def _migration_error(db: Database, exc: DBAPIError) -> DatabaseError:
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    url = mask_url(str(db.engine.url))
    if "vector" in detail and ("extension" in detail or "type" in detail):
        return DatabaseError(
            f"PostgreSQL at {url} cannot use the pgvector extension: {detail}",
            "install pgvector on the server and run CREATE EXTENSION vector as a superuser "
            "(or grant this user the right to), then: parley db upgrade")
    if "permission denied to create role" in detail or "must be owner" in detail:
        return DatabaseError(
            f"migrating {url} failed: {detail}",
            "run parley db upgrade as the schema owner; it needs CREATEROLE the first time "
            "(to create parley_member), or a superuser can CREATE ROLE parley_member NOLOGIN "
            "first (see the README's team setup)")
    return DatabaseError(f"migrating {url} failed: {detail}",
                         "nothing was changed on PostgreSQL (the migration is one transaction); "
                         "SQLite files are backed up as <file>.bak-<revision>")
