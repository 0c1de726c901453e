"""Ingestion: the progress and totals of a run, and runs as recorded (``engine.ingest``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """Progress of an ingestion run: sent after each file."""

    run_id: int
    path: str
    done: int
    total: int
    # "indexed" | "linked" (a copy, stored once) | "skipped" | "error" | "pruned" |
    # "reconnecting" (not a file result: the database went away and the run waits for it;
    # ``error`` says so)
    outcome: str
    error: str | None = None
    chunks: int = 0


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Totals of a finished ingestion run."""

    run_id: int
    status: str  # "complete" | "interrupted"
    files_seen: int
    indexed: int
    skipped: int
    failed: int
    pruned: int
    chunks: int
    errors: tuple[tuple[str, str], ...] = ()  # (path, reason)
    linked: int = 0  # of ``indexed``: copies of content already indexed, stored once


@dataclass(frozen=True, slots=True)
class IngestRunInfo:
    """One ingestion run as recorded: what it was asked, what it did, which files failed."""

    id: int
    collection: str | None
    status: str  # "running" | "complete" | "interrupted" | "failed"
    target: tuple[str, ...]
    started_at: datetime
    finished_at: datetime | None
    files_seen: int
    indexed: int
    skipped: int
    failed: int
    pruned: int
    chunks: int
    errors: tuple[tuple[str, str], ...] = ()  # (path, reason); path "" for the run itself
