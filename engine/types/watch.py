"""Watched folders: the folders ``parley watch`` keeps in sync, and what the watcher is doing
(``engine.watch``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class WatchedFolderInfo:
    """A folder ``parley watch`` keeps in sync with a collection."""

    id: int
    path: str
    collection: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    tags: tuple[str, ...]
    hidden: bool
    last_sync_at: datetime | None
    last_error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """What the folder watcher is doing: ``state`` is ``syncing`` (a run started),
    ``synced`` (a run ended: its counts), ``watching`` (waiting for changes) or ``error``."""

    state: str
    folder: str | None = None
    changed: int = 0  # files seen changed or added
    indexed: int = 0
    linked: int = 0  # of indexed: renamed/copied content, not embedded again
    removed: int = 0
    failed: int = 0
    detail: str | None = None
    at: datetime | None = None
