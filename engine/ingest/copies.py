"""Identical content met during an ingestion run: linked to one chunk set, not re-embedded.

A file whose content (bytes and file type) the collection's owner already has indexed
points at that chunk set (``store.write_linked``). Two copies met in the same run: the
first one prepared claims the content, the others wait in the write stage until it is
written, then link to its set. ``IngestJob`` mixes this in; the attributes declared below
are its own.
"""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from engine.ingest import store
from engine.ingest.prepare import Prepared, PrepareOptions, prepare_file
from engine.types import IngestProgress

T = TypeVar("T")
EMBED_CALL = 64  # texts per embedding call: sorted by length inside, so little padding


class CopyLinks:
    """The copy handling of an ingestion run (mixed into ``IngestJob``)."""

    target: store.Target
    db: Any
    prep: PrepareOptions
    totals: Any
    run_id: int
    total: int
    _done: int
    _out: asyncio.Queue[Any]
    _last_set: int | None
    shareable: dict[tuple[str, str], int]
    _claims: dict[tuple[str, str], int | str]
    _claim_lock: threading.Lock
    _written: dict[tuple[str, str], int | None]  # claimed content -> its chunk set
    _waiting: dict[tuple[str, str], list[Prepared]]

    if False:  # provided by IngestJob
        async def _durable(self, step: Callable[[], Awaitable[T]], path: str) -> T: ...
        async def _write_file(self, item: Prepared, vectors: np.ndarray | None) -> str: ...
        async def _embed_texts(self, texts: list[str]) -> np.ndarray: ...

    def _claim(self, path: str, content_hash: str) -> int | str | None:
        """What already holds this content: a chunk set, a file of this run, or None (then
        ``path`` claims it). Called from the prepare threads."""
        key = (content_hash, store.suffix_of(path))
        with self._claim_lock:
            holder = self._claims.get(key) or self.shareable.get(key)
            if holder is None:
                self._claims[key] = path
            return holder

    def _parked(self, item: Prepared) -> bool:
        """Hold back a copy whose content another file of this run claimed and is not
        written yet (True); else give it the chunk set to link to."""
        if item.outcome == "link" and isinstance(item.link, str):
            key = (item.content_hash or "", store.suffix_of(item.path))
            if key not in self._written:
                self._waiting.setdefault(key, []).append(item)
                return True
            item.link = self._written[key]
        return False

    async def _release_waiting(self) -> None:
        """At the end of the write stage: copies whose content never got written."""
        for waiting in list(self._waiting.values()):
            for item in waiting:
                item.link = None
                await self._written_file(item, None)

    async def _written_file(self, item: Prepared, vectors: np.ndarray | None) -> None:
        outcome = await self._durable(lambda: self._write_file(item, vectors), item.path)
        self._done += 1
        self._out.put_nowait(IngestProgress(
            self.run_id, item.path, self._done, self.total, outcome, item.error,
            len(item.chunks) if outcome == "indexed" else 0))
        if item.outcome != "link" and item.content_hash is not None:
            key = (item.content_hash, store.suffix_of(item.path))
            if self._claims.get(key) == item.path:
                self._written[key] = self._last_set if outcome == "indexed" else None
                for waiting in self._waiting.pop(key, []):
                    waiting.link = self._written[key]
                    await self._written_file(waiting, None)

    async def _link(self, item: Prepared) -> str:
        """Point the file's document at the chunk set holding its content; when that is
        not possible (removed meanwhile, other embedder), chunk and embed it after all."""
        t = self.target
        if isinstance(item.link, int):
            async with self.db.write() as s:
                await store.check_target(s, t)
                linked = await store.write_linked(s, t, item, item.link) is not None
            if linked:
                self.totals.indexed += 1
                self.totals.linked += 1
                return "linked"
        fresh = await asyncio.to_thread(prepare_file, Path(item.path), None,
                                        dataclasses.replace(self.prep, claim=None))
        vectors = None
        if fresh.outcome == "index":
            texts = [c.text for c in fresh.chunks]
            vectors = np.concatenate([await self._embed_texts(texts[i:i + EMBED_CALL])
                                      for i in range(0, len(texts), EMBED_CALL)])
        for f in dataclasses.fields(fresh):
            setattr(item, f.name, getattr(fresh, f.name))
        return await self._write_file(item, vectors)
