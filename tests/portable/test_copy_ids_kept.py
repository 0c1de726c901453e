"""Into an empty PostgreSQL table the source's ids are kept, even when the table's sequence
already gave out ids (rows inserted, then deleted); the sequence is then past the copied
ids, so what Parley inserts afterwards does not collide."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from engine import Engine
from tests.conftest import PostgresServer, migrate
from tests.portable.support import cli, populate, settings_for, table_digests


TABLES = ("users", "sessions", "messages", "chunks")


@pytest.fixture
async def pg_url(postgres_server: PostgresServer, parley_home: Path) -> AsyncIterator[str]:
    name = await postgres_server.create_database()
    yield postgres_server.sqlalchemy_url(name)
    await postgres_server.drop_database(name)


async def _sql(url: str) -> asyncpg.Connection:
    return await asyncpg.connect(make_url(url).set(drivername="postgresql")
                                 .render_as_string(hide_password=False))


async def test_ids_are_kept_into_tables_emptied_after_use(parley_home: Path,
                                                           pg_url: str) -> None:
    source = f"sqlite:///{parley_home / 'source.db'}"
    await populate(source)
    await migrate(settings_for(pg_url))
    conn = await _sql(pg_url)
    try:  # the target was used, then emptied: its sequences moved on
        for i in range(2):
            uid = await conn.fetchval("INSERT INTO users (name, created_at) VALUES ($1, "
                                      "now()) RETURNING id", f"gone{i}")
            await conn.execute("INSERT INTO sessions (user_id, title, archived, created_at, "
                               "updated_at) VALUES ($1, 'x', false, now(), now())", uid)
        await conn.execute("SELECT setval('messages_id_seq', 5000)")  # far past the source
        await conn.execute("DELETE FROM users")  # cascades into their sessions
        assert await conn.fetchval("SELECT count(*) FROM sessions") == 0
        used = {t: await conn.fetchval(f"SELECT CASE WHEN is_called THEN last_value ELSE 0 "
                                       f"END FROM {t}_id_seq") for t in TABLES}
        assert used["users"] == 2 and used["messages"] == 5000
    finally:
        await conn.close()

    out = cli("db", "copy", "--to", pg_url, "--json", url=source)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report["ids_shifted"] == {}
    assert await table_digests(pg_url) == await table_digests(source)  # ids and all

    conn = await _sql(pg_url)
    try:
        tops = {t: await conn.fetchval(f"SELECT max(id) FROM {t}") for t in TABLES}
        # every sequence is past its table's copied ids, and never moved back (messages')
        for table, top in tops.items():
            assert await conn.fetchval(f"SELECT last_value FROM {table}_id_seq") == max(
                top, used[table]), table
    finally:
        await conn.close()
    assert used["sessions"] < tops["sessions"] and used["chunks"] == 0  # both cases ran
    # Parley's own inserts afterwards (a new user, session and message) do not collide
    async with Engine(settings_for(pg_url)) as engine:
        assert engine.user_id == max(tops["users"], used["users"]) + 1
        session = await engine.sessions.create("after the copy")
        message = await engine.sessions.add_message(session.id, "user", "still works")
    assert session.id == tops["sessions"] + 1
    assert message.id == 5001
