"""The ``ingestion_runs`` rows: one per run, with its target, options, totals and errors.

A run is ``running`` until it ends ``complete``, ``interrupted`` (cancelled, Ctrl-C) or
``failed`` (the embedder or the database stopped working). A process killed outright
cannot say so: the next run on this host finds rows whose process is gone and marks them
``interrupted``.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select, update

from engine.db import models as m
from engine.db.coltypes import utcnow
from engine.db.connect import Database

MAX_STORED_ERRORS = 5000  # the documents table keeps every file's error; this is the summary


@dataclass(slots=True)
class RunTotals:
    """What a run has done so far."""

    files_seen: int = 0
    indexed: int = 0
    skipped: int = 0
    failed: int = 0
    pruned: int = 0
    chunks: int = 0
    errors: list[tuple[str, str]] = field(default_factory=list)
    linked: int = 0  # of the indexed: copies of content already indexed (not stored)

    def fail(self, path: str, reason: str) -> None:
        self.failed += 1
        self.errors.append((path, reason))

    def values(self) -> dict[str, Any]:
        return {
            "files_seen": self.files_seen, "indexed": self.indexed, "skipped": self.skipped,
            "failed": self.failed, "pruned": self.pruned, "chunks": self.chunks,
            "errors": [{"path": p, "reason": r} for p, r in self.errors[:MAX_STORED_ERRORS]],
        }


def process_marker() -> dict[str, Any]:
    """Who runs this ingestion (to tell a live run from one whose process was killed)."""
    return {"host": socket.gethostname(), "pid": os.getpid()}


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's live process
        return True
    return True


async def close_dead_runs(db: Database, user_id: int) -> int:
    """Mark ``interrupted`` the running rows of this host whose process no longer exists."""
    host = socket.gethostname()
    async with db.read() as s:
        rows = (await s.execute(select(m.IngestionRun.id, m.IngestionRun.options).where(
            m.IngestionRun.user_id == user_id, m.IngestionRun.status == "running"))).all()
    dead = [run_id for run_id, options in rows
            if isinstance(options, dict) and options.get("host") == host
            and isinstance(options.get("pid"), int) and not _alive(options["pid"])]
    if dead:
        async with db.write() as s:
            await s.execute(update(m.IngestionRun)
                            .where(m.IngestionRun.id.in_(dead), m.IngestionRun.status == "running")
                            .values(status="interrupted"))
    return len(dead)


async def start_run(db: Database, user_id: int, collection_id: int, target: list[str],
                    options: dict[str, Any]) -> int:
    """Insert the run row (status ``running``) and return its id."""
    async with db.write() as s:
        run = m.IngestionRun(user_id=user_id, collection_id=collection_id, target=target,
                             options={**options, **process_marker()}, status="running")
        s.add(run)
        await s.flush()
        return run.id


async def save_run(db: Database, run_id: int, totals: RunTotals, *,
                   status: str = "running") -> None:
    """Store the totals; a status other than ``running`` also sets ``finished_at``."""
    values = totals.values()
    if status != "running":
        values.update(status=status, finished_at=utcnow())
    async with db.write() as s:
        await s.execute(update(m.IngestionRun).where(m.IngestionRun.id == run_id)
                        .values(**values))
