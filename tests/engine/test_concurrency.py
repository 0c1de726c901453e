"""Two OS processes writing to one SQLite file at once, without "database is locked"."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from engine import Engine, load_settings

REPO = Path(__file__).resolve().parents[2]

WRITER = """
import asyncio, sys
from sqlalchemy import func, select
from engine import Engine, load_settings
from engine.db import models as m

async def main(session_id: int, n: int) -> None:
    async with Engine(load_settings()) as engine:
        for i in range(n):
            # read, then write, in one transaction: the pattern that fails with a deferred BEGIN
            async with engine.db.write() as s:
                count = await s.scalar(select(func.count()).select_from(m.Message))
                content = f"{sys.argv[3]}-{i}-{count}"
                await engine.sessions.add_message_in(s, session_id, "user", content)

asyncio.run(main(int(sys.argv[1]), int(sys.argv[2])))
"""


async def test_two_processes_write_one_sqlite_file(parley_home: Path) -> None:
    settings = load_settings()
    async with Engine(settings) as engine:
        session = await engine.sessions.create("shared")
    env = {**os.environ, "PARLEY_HOME": str(parley_home)}
    n = 150
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(session.id), str(n), tag],
                              cwd=REPO, env=env, stderr=subprocess.PIPE, text=True)
             for tag in ("a", "b")]
    errors = [p.communicate(timeout=300)[1] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], errors
    assert not any("locked" in e for e in errors)
    async with Engine(settings) as engine:
        detail = await engine.sessions.get(session.id)
        assert engine.db is not None
        from sqlalchemy import func, select

        from engine.db import models as m
        async with engine.db.read() as s:
            total = await s.scalar(select(func.count()).select_from(m.Message))
    assert total == 2 * n
    # the read-then-write counts are all distinct: every transaction saw a consistent state
    counts = [int(msg.content.rsplit("-", 1)[1]) for msg in detail.messages]
    assert len(detail.messages) <= 2 * n
    assert len(set(counts)) == len(counts)
