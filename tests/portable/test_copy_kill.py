"""A ``db copy`` killed with SIGKILL at several points, then run again: the same result as
an uninterrupted copy, no duplicates (the state commits with each batch)."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import Engine
from engine.db import models as m
from engine.db.connect import Database, create_engine
from tests.conftest import PostgresServer
from tests.portable.support import (
    REPO,
    cli,
    populate,
    real_cli,
    settings_for,
    table_digests,
    vector_indexes,
)

EXTRA_MESSAGES = 1500


async def _big_source(url: str, *, second_user: bool = True) -> None:
    await populate(url, second_user=second_user)
    async with Engine(settings_for(url)) as me:
        session = await me.sessions.create("long")
        assert me.db is not None
        async with me.db.write() as s:
            s.add_all(m.Message(user_id=me.user_id, session_id=session.id, role="user",
                                content=f"message {i}") for i in range(EXTRA_MESSAGES))


async def _copied(db: Database) -> int:
    try:
        async with db.engine.connect() as conn:
            return int(await conn.scalar(select(func.coalesce(func.sum(m.CopyState.copied),
                                                              0))) or 0)
    except Exception:  # the schema is being created
        return 0


def _child_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_HOME=os.environ["PARLEY_HOME"], PYTHONPATH=str(REPO))
    return env


async def _kill_when(proc: subprocess.Popen[bytes], ready: Callable[[], Awaitable[bool]]) -> None:
    """SIGKILL ``proc`` as soon as ``ready()`` holds (it must still be running then)."""
    deadline = time.monotonic() + 300
    try:
        while not await ready():
            assert proc.poll() is None, (
                f"the copy ended before the kill: {proc.stderr.read()}")  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.01)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(60) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()


async def _run_and_kill(source: str, target: str, at_least: int) -> None:
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "--db", source, "db", "copy",
                             "--to", target, "--batch", "10"], cwd=REPO, env=_child_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    db = Database(create_engine(target))

    async def copied_enough() -> bool:
        return await _copied(db) >= at_least

    try:
        await _kill_when(proc, copied_enough)
    finally:
        await db.dispose()


@pytest.fixture(params=["sqlite", "postgres"])
async def target(request: pytest.FixtureRequest, parley_home: Path) -> AsyncIterator[str]:
    """The copy's target: an SQLite file, or a fresh database on the suite's PostgreSQL
    (dropped afterwards)."""
    if request.param == "sqlite":
        yield f"sqlite:///{parley_home / 'target.db'}"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = await server.create_database()
    try:
        yield server.sqlalchemy_url(name)
    finally:
        await server.drop_database(name)


async def test_sigkill_then_rerun_is_identical(parley_home: Path, target: str) -> None:
    source = f"sqlite:///{parley_home / 'source.db'}"
    await _big_source(source)
    # early (first tables), in the middle of the messages, near the end of them
    for at_least in (1, 600, 1300):
        await _run_and_kill(source, target, at_least)
    # the resume after the kills is a new process, as it is for a user
    done = real_cli("db", "copy", "--to", target, url=source)
    assert done.returncode == 0, done.stderr
    assert "(resumed)" in done.stderr and "every table verified" in done.stderr
    assert await table_digests(target) == await table_digests(source)
    # and once more: nothing to do, nothing duplicated
    again = cli("db", "copy", "--to", target, url=source)
    assert again.returncode == 0, again.stderr
    assert await table_digests(target) == await table_digests(source)


async def _kill_in_phase(source: str, target: str, phase: str, at: int, marker: Path) -> None:
    marker.unlink(missing_ok=True)
    proc = subprocess.Popen([sys.executable, "-m", "tests.portable.pausing_copy", source,
                             target, phase, str(at), str(marker)], cwd=REPO, env=_child_env(),
                            stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)

    async def paused() -> bool:
        return marker.exists()

    await _kill_when(proc, paused)


async def test_sigkill_while_building_indexes_and_verifying(
        parley_home: Path, target: str) -> None:
    """Killed after the rows, with one vector index built; then killed halfway through the
    verification: the rerun builds what is missing, verifies, and the target checks clean."""
    source = f"sqlite:///{parley_home / 'source.db'}"
    marker = parley_home / "paused"
    await populate(source)
    await _kill_in_phase(source, target, "(indexes)", 1, marker)
    assert marker.read_text().startswith("(indexes) 1/3")
    # the other two were never built
    assert await vector_indexes(target, full_precision_only=True) == 1
    await _kill_in_phase(source, target, "(verify)", 5, marker)
    # the resume after the kills is a new process, as it is for a user
    done = real_cli("db", "copy", "--to", target, url=source)
    assert done.returncode == 0, done.stderr
    assert "every table verified" in done.stderr
    assert await table_digests(target) == await table_digests(source)
    assert await vector_indexes(target, full_precision_only=True) == 3
    checked = cli("db", "check", url=target)
    assert checked.returncode == 0, checked.stdout + checked.stderr
