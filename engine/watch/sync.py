"""Keeping the watched folders in sync: a catch-up run, then debounced file events.

Order matters within a batch: changed and added files are ingested first, deleted paths
removed after. A rename is an added path and a deleted one in the same batch; ingesting the
new path first finds its content already indexed (the old document still holds it) and
links it, so nothing is chunked or embedded again, and removing the old path then drops
only the old document.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from engine.db.coltypes import utcnow as now_utc
from engine.errors import NotFound, ParleyError
from engine.ingest.loaders import detect_kind
from engine.ingest.walker import glob_matches
from engine.types import IngestResult, WatchedFolderInfo, WatchEvent
from engine.watch.folders import WatchFolders

if TYPE_CHECKING:
    from engine.facade import Engine

RECHECK_MS = 2_000  # how often the list of watched folders is read again while quiet


def wanted(folder: WatchedFolderInfo, path: str) -> bool:
    """Whether a file under ``folder`` belongs in its collection (globs, hidden, type)."""
    rel = os.path.relpath(path, folder.path).replace(os.sep, "/")
    if rel.startswith("../") or rel == "..":
        return False
    parts = rel.split("/")
    if not folder.hidden and any(p.startswith(".") for p in parts):
        return False
    if folder.exclude and any(glob_matches(folder.exclude, "/".join(parts[:i + 1]))
                              for i in range(len(parts))):
        return False
    if folder.include and not glob_matches(folder.include, rel):
        return False
    return detect_kind(Path(path)) is not None


def _files(folder: WatchedFolderInfo, path: str) -> list[str]:
    """The wanted files at ``path`` (a file, or every file under a folder moved in)."""
    if os.path.isfile(path):
        return [path] if wanted(folder, path) else []
    found = []
    for base, dirs, names in os.walk(path):
        dirs.sort()
        found += [p for name in sorted(names) if wanted(folder, p := os.path.join(base, name))]
    return found


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class FolderSync:
    """Sync every watched folder of the engine's user: ``catch_up`` once, or ``run``."""

    def __init__(self, engine: Engine, *, debounce_ms: int | None = None,
                 on_event: Callable[[WatchEvent], object] | None = None) -> None:
        self.engine = engine
        self.folders = WatchFolders(engine)
        self.debounce_ms = debounce_ms or engine.settings.watch.debounce_ms
        self.on_event = on_event
        self._retry: set[str] = set()

    def _emit(self, event: WatchEvent) -> None:
        if self.on_event is not None:
            self.on_event(event)

    async def catch_up(self) -> list[WatchEvent]:
        """One full run per folder: what changed while nothing watched (unchanged files are
        skipped by their hash, vanished ones pruned)."""
        events = []
        for folder in await self.folders.list():
            events.append(await self._ingest(folder, [folder.path], prune=True,
                                             filtered=False))
        return events

    async def _ingest(self, folder: WatchedFolderInfo, paths: list[str], *,
                      prune: bool = False, filtered: bool = True,
                      gone: Iterable[str] = ()) -> WatchEvent:
        gone = list(gone)
        self._emit(WatchEvent("syncing", folder.path, changed=len(paths) + len(gone),
                              at=now_utc()))
        result: IngestResult | None = None
        removed = 0
        try:
            if paths:
                lib = self.engine.library
                result = await lib.ingest(
                    paths, collection=folder.collection, tags=folder.tags, prune=prune,
                    include=() if filtered else folder.include,
                    exclude=() if filtered else folder.exclude, hidden=folder.hidden)
            for path in gone:  # after the ingestion: a renamed file was linked by then
                if os.path.exists(path):
                    continue
                try:
                    removed += len(await self.engine.library.remove_documents(
                        path, collection=folder.collection))
                except NotFound:
                    pass
        except ParleyError as exc:
            self._retry.update(paths)
            await self.folders.record(folder.id, exc.one_line())
            event = WatchEvent("error", folder.path, detail=exc.one_line(), at=now_utc())
            self._emit(event)
            return event
        await self.folders.record(folder.id, None)
        event = WatchEvent(
            "synced", folder.path, changed=len(paths) + len(gone),
            indexed=result.indexed if result else 0, linked=result.linked if result else 0,
            removed=removed + (result.pruned if result else 0),
            failed=result.failed if result else 0, at=now_utc())
        self._emit(event)
        return event

    async def apply(self, folders: list[WatchedFolderInfo], paths: Iterable[str]) -> None:
        """Sync the changed ``paths`` (files or folders, present or gone) of ``folders``."""
        paths = sorted(set(paths) | self._retry)
        self._retry.clear()
        for folder in folders:
            mine = [p for p in paths if _under(p, folder.path)]
            if not mine:
                continue
            present = await asyncio.to_thread(
                lambda mine=mine, folder=folder: sorted(  # type: ignore[misc]
                    {f for p in mine if os.path.exists(p) for f in _files(folder, p)}))
            gone = [p for p in mine if not os.path.exists(p)]
            if present or gone:
                await self._ingest(folder, present, gone=gone)

    async def run(self, stop: asyncio.Event | None = None, *, once: bool = False) -> None:
        """Catch up, then keep every watched folder in sync until ``stop`` is set (or
        cancelled). Folders added or removed meanwhile are picked up within seconds."""
        await self.catch_up()
        if once:
            return
        import watchfiles  # only when watching: the app's first paint never pays for it

        stop = stop or asyncio.Event()
        while not stop.is_set():
            folders = await self.folders.list()
            roots = sorted({f.path for f in folders if os.path.isdir(f.path)})
            self._emit(WatchEvent("watching", ", ".join(roots) or None, at=now_utc()))
            if not roots:
                await _wait(stop, RECHECK_MS / 1000)
                continue
            async for changes in watchfiles.awatch(
                    *roots, watch_filter=None, step=self.debounce_ms,
                    debounce=max(10 * self.debounce_ms, 5_000), stop_event=stop,
                    rust_timeout=RECHECK_MS, yield_on_timeout=True):
                if changes or self._retry:
                    await self.apply(folders, [path for _, path in changes])
                    self._emit(WatchEvent("watching", ", ".join(roots), at=now_utc()))
                if [f.id for f in await self.folders.list()] != [f.id for f in folders]:
                    break  # the list changed: watch the new set


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        pass
