"""The real ``parley ingest`` command while its PostgreSQL server restarts under it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import Engine, load_settings
from engine.db import models as m
from tests.cli.test_cli_ingest import _write_corpus
from tests.conftest import migrate
from tests.support.pg_restart import RestartableServer

REPO = Path(__file__).resolve().parents[2]


class _Lines:
    """Collects a pipe's lines in a thread, so the test can wait for one."""

    def __init__(self, stream: object) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream: object) -> None:
        for line in stream:  # type: ignore[attr-defined]
            self.lines.append(line)

    def text(self) -> str:
        return "".join(self.lines)


async def _indexed(engine: Engine) -> int:
    assert engine.db is not None
    async with engine.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(m.Document)
                                  .where(m.Document.status == "indexed")) or 0)


async def test_ingest_waits_for_a_restarted_server_and_finishes_whole(
        own_server: RestartableServer, parley_home: Path, tmp_path: Path) -> None:
    url = await own_server.create_database()
    settings = load_settings(overrides={"database": {"url": url}})
    await migrate(settings)
    folder = tmp_path / "corpus"
    files = 120
    _write_corpus(folder, files=files)
    env = {k: v for k, v in os.environ.items() if k != "PARLEY_CONFIG"}
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "--db", url, "ingest",
                             str(folder), "-c", "notes"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    stderr = _Lines(proc.stderr)
    try:
        async with Engine(settings) as watcher:
            deadline = time.monotonic() + 600
            while await _indexed(watcher) < 3:  # the run is writing: cut the server now
                assert proc.poll() is None, stderr.text()
                assert time.monotonic() < deadline, stderr.text()
                await asyncio.sleep(0.02)
            await asyncio.to_thread(own_server.stop)
            while "waiting up to 60 s for it to come back" not in stderr.text():
                assert proc.poll() is None, stderr.text()  # it waits: it does not give up
                assert time.monotonic() < deadline, stderr.text()
                await asyncio.sleep(0.05)
            await asyncio.to_thread(own_server.start)
            code = await asyncio.to_thread(proc.wait, 600)
            out = stderr.text()
            assert code == 0, out
            assert "lost the connection to the database" in out
            assert "the database is back; going on" in out
            assert f"indexed {files}, unchanged 0, failed 0 of {files} files" in out
            assert watcher.db is not None
            async with watcher.db.read() as s:  # every file once, each with all its rows
                docs = (await s.execute(select(
                    m.Document.source_path, m.Document.status, m.Document.chunk_count))).all()
                chunks = dict((await s.execute(
                    select(m.Document.source_path, func.count(m.Chunk.id))
                    .join(m.Chunk, m.Chunk.chunk_set_id == m.Document.chunk_set_id)
                    .group_by(m.Document.source_path))).all())
                vectors = await s.scalar(select(func.count()).select_from(m.ChunkEmbedding))
                total = await s.scalar(select(func.count()).select_from(m.Chunk))
            assert len(docs) == files == len({p for p, _, _ in docs})
            assert all(status == "indexed" for _, status, _ in docs)
            assert {p: n for p, _, n in docs} == chunks
            assert vectors == total == sum(chunks.values())
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
