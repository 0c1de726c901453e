"""A PostgreSQL server that goes away under the engine: restarts between and during
operations, on a server of the test's own (``tests/support/pg_restart.py``)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import func, select, text

from engine import Engine, load_settings
from engine.db import models as m
from engine.db.reconnect import retry_read
from engine.errors import ConnectionLost
from tests.conftest import migrate
from tests.support.pg_restart import RestartableServer


@pytest.fixture
async def pg_engine(own_server: RestartableServer, parley_home: Path) -> AsyncIterator[Engine]:
    url = await own_server.create_database()
    settings = load_settings(overrides={"database": {"url": url}})
    await migrate(settings)
    async with Engine(settings) as engine:
        yield engine


async def _ingest(engine: Engine, folder: Path) -> None:
    folder.mkdir(exist_ok=True)
    (folder / "geysers.md").write_text("# Geysers\n\nA geyser erupts when groundwater boils.\n")
    async for _ in engine.library.ingest([str(folder)], collection="notes"):
        pass


async def test_the_next_operation_after_a_restart_reconnects(
        pg_engine: Engine, own_server: RestartableServer, tmp_path: Path) -> None:
    await _ingest(pg_engine, tmp_path / "docs")
    first = await pg_engine.sessions.create("before the restart")
    assert (await pg_engine.retrieval.search("geyser"))[0].path.endswith("geysers.md")
    await asyncio.to_thread(own_server.stop)
    await asyncio.to_thread(own_server.start)
    # every pooled connection died with the server; none of them is used again
    listed = await pg_engine.sessions.list()
    assert [s.id for s in listed] == [first.id]
    assert (await pg_engine.retrieval.search("groundwater"))[0].path.endswith("geysers.md")
    second = await pg_engine.sessions.create("after the restart")
    assert {s.id for s in await pg_engine.sessions.list()} == {first.id, second.id}


async def test_while_the_server_is_down_operations_fail_with_one_clear_error(
        pg_engine: Engine, own_server: RestartableServer) -> None:
    await pg_engine.sessions.create("kept")
    await asyncio.to_thread(own_server.stop)
    try:
        with pytest.raises(ConnectionLost) as read:
            await pg_engine.sessions.list()
        assert "lost the connection to the database" in read.value.message
        assert "reconnects by itself" in (read.value.hint or "")
        with pytest.raises(ConnectionLost) as write:
            await pg_engine.sessions.create("never written")
        assert "nothing of it was saved" in write.value.message
    finally:
        await asyncio.to_thread(own_server.start)
    assert [s.title for s in await pg_engine.sessions.list()] == ["kept"]


async def test_a_write_in_flight_is_rolled_back_whole_and_reported(
        pg_engine: Engine, own_server: RestartableServer) -> None:
    assert pg_engine.db is not None
    with pytest.raises(ConnectionLost, match="during a write"):
        async with pg_engine.db.write() as s:
            s.add(m.Session(user_id=pg_engine.user_id, title="half"))
            await s.flush()  # the row is on the server, uncommitted
            await asyncio.to_thread(own_server.stop)
            await s.execute(text("SELECT 1"))
    await asyncio.to_thread(own_server.start)
    async with pg_engine.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(m.Session)) == 0
    done = await pg_engine.sessions.create("whole")  # and writing works again
    assert [s.id for s in await pg_engine.sessions.list()] == [done.id]


async def test_an_idempotent_read_cut_by_a_restart_is_retried(
        pg_engine: Engine, own_server: RestartableServer) -> None:
    assert pg_engine.db is not None
    db = pg_engine.db
    calls: list[str] = []
    started = asyncio.Event()

    class Service:  # shaped like the engine's services: the database as ``db``
        def __init__(self) -> None:
            self.db = db

        @retry_read
        async def slow_read(self) -> int:
            calls.append("call")
            async with self.db.read() as s:
                if len(calls) == 1:  # the first call is still running when the server stops
                    started.set()
                    await s.execute(text("SELECT pg_sleep(600)"))
                return int(await s.scalar(text("SELECT 42")))

    task = asyncio.create_task(Service().slow_read())
    await started.wait()
    watcher = await asyncpg.connect(own_server.libpq_url("postgres"))
    try:  # the sleep is running on the server: stopping it now cuts a read in flight
        while not await watcher.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT pg_sleep%'"):
            await asyncio.sleep(0.05)
    finally:
        await watcher.close()
    # stopping waits for nothing: a fast shutdown cuts the sleeping query; the server is
    # back before the retry asks for a connection
    await asyncio.to_thread(own_server.stop)
    await asyncio.to_thread(own_server.start)
    assert await asyncio.wait_for(task, 120) == 42
    assert len(calls) == 2


async def test_search_and_history_verbs_retry_reads(pg_engine: Engine) -> None:
    """The read-only verbs front ends call most carry the retry."""
    for verb in (pg_engine.retrieval.search, pg_engine.retrieval.search_many,
                 pg_engine.sessions.list, pg_engine.sessions.get, pg_engine.sessions.search,
                 pg_engine.library.collections, pg_engine.library.documents):
        assert getattr(verb, "__wrapped__", None) is not None, verb
