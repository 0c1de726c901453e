"""One ingestion run: discover, prepare, embed and write, as three overlapping stages.

- Prepare: worker threads hash each file, skip it when its content is already indexed, or
  load and chunk it (``prepare.prepare_file``).
- Embed: chunks of several files are embedded together in calls of ``EMBED_CALL`` texts
  (the embedder runs in its own thread); while it works, the workers prepare the next
  files. A batch is sent as soon as one is full or no prepared file is waiting, so the
  embedder never idles while there is work.
- Write: each file's chunks, vectors and content hash go in one short transaction, as soon
  as all its chunks are embedded; failures are recorded per file and the run goes on. When
  the PostgreSQL server goes away under a write, the run says so, waits for it to answer
  again (``database.reconnect_timeout_s``) and writes that file again.

A file whose content (bytes and file type) the user already has indexed, under another
path or in another collection, is not loaded, chunked nor embedded: its document points at
the existing chunk set (``store.write_linked``). Two copies met in the same run are
chunked and embedded once too: the first claims the content, the others wait for it.

Queues between the stages are bounded, so memory stays flat on any number of files.
Cancelling the iteration (Ctrl-C) marks the run ``interrupted``; files already written stay
indexed and a rerun skips them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
from sqlalchemy.exc import DataError, IntegrityError

from engine.db import reconnect
from engine.db.search_backend import for_backend
from engine.errors import ConnectionLost, ParleyError, ProviderError
from engine.ingest import runs as run_rows
from engine.ingest import store
from engine.ingest.copies import EMBED_CALL, CopyLinks
from engine.ingest.prepare import Known, Prepared, PrepareOptions, prepare_file
from engine.ingest.walker import Discovery, discover, is_gone
from engine.types import IngestProgress, IngestResult

if TYPE_CHECKING:
    from engine.facade import Engine
    from engine.providers.embedders import Embedder

T = TypeVar("T")
PARSE_WORKERS = 2  # parsing holds the GIL: more threads would not parse faster
QUEUE_FILES = 32
SAVE_EVERY_S = 2.0
REFRESH_STATISTICS_AFTER = 1_000  # chunks written by a run: then refresh planner statistics


@dataclass(frozen=True, slots=True)
class IngestOptions:
    """What ``parley ingest`` was asked to do."""

    tags: tuple[str, ...] = ()
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    prune: bool = False
    hidden: bool = False
    force: bool = False


class _Pending:
    """A file whose chunks are being embedded."""

    def __init__(self, item: Prepared, dimension: int) -> None:
        self.item = item
        self.vectors = np.empty((len(item.chunks), dimension), dtype=np.float32)
        self.remaining = len(item.chunks)


class _Failure:
    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


class IngestJob(CopyLinks):
    """One run over ``paths`` into the collection ``target`` names."""

    def __init__(self, engine: Engine, embedder: Embedder, target: store.Target,
                 paths: list[str], options: IngestOptions) -> None:
        self.engine, self.embedder, self.target = engine, embedder, target
        self.paths, self.options = paths, options
        assert engine.db is not None
        self.db = engine.db
        retrieval = engine.settings.retrieval
        # The model adds two special tokens ([CLS], [SEP]) the chunk counter leaves out.
        budget = min(retrieval.chunk_tokens, max(embedder.max_tokens - 2, 16))
        self.prep = PrepareOptions(max_bytes=int(retrieval.max_file_mb * 1_048_576),
                                   max_tokens=budget,
                                   overlap_tokens=min(retrieval.chunk_overlap, budget // 2),
                                   force=options.force, claim=self._claim)
        self.totals = run_rows.RunTotals()
        self.known: dict[str, Known] = {}
        self.shareable: dict[tuple[str, str], int] = {}
        self._claims: dict[tuple[str, str], int | str] = {}
        self._claim_lock = threading.Lock()
        self._written: dict[tuple[str, str], int | None] = {}  # claimed content -> its set
        self._waiting: dict[tuple[str, str], list[Prepared]] = {}
        self.run_id = 0
        self.total = 0
        self._done = 0
        self._usage: list[store.UsageRecord] = []
        self._saved_at = time.monotonic()
        self._last_set: int | None = None
        self._out: asyncio.Queue[Any] = asyncio.Queue()

    # -- the run ------------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[IngestProgress | IngestResult]:
        """Progress after each file, then the ``IngestResult``."""
        await run_rows.close_dead_runs(self.db, self.target.actor)
        self.run_id = await run_rows.start_run(
            self.db, self.target.actor, self.target.collection_id, self.paths,
            self._options_row())
        status, tasks = "interrupted", []
        try:
            found = await asyncio.to_thread(discover, self.paths, include=self.options.include,
                                            exclude=self.options.exclude,
                                            hidden=self.options.hidden)
            async with self.db.read() as s:
                self.known = await store.known_documents(s, self.target.user_id,
                                                         self.target.collection_id)
                if not self.options.force:  # forced: re-chunk, so share nothing older
                    self.shareable = await store.shareable_sets(s, self.target.user_id,
                                                                self.target.embedder)
            self.total = len(found.files) + len(found.errors)
            self.totals.files_seen = self.total
            for path, reason in found.errors:
                self.totals.fail(path, reason)
                self._done += 1
                yield IngestProgress(self.run_id, path, self._done, self.total, "error", reason)
            tasks = [asyncio.create_task(self._stages(found))]
            while True:
                event = await self._out.get()
                if isinstance(event, _Failure):
                    raise event.exc
                if isinstance(event, IngestResult):
                    status = event.status
                    yield event
                    return
                yield event
        except Exception as exc:
            status = "failed"
            reason = exc.one_line() if isinstance(exc, ParleyError) else repr(exc)
            self.totals.errors.append(("", f"the run stopped: {reason}"))
            raise
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            if status != "complete":
                # Best effort: the database may be what failed. A row left "running" is
                # closed as interrupted by the next run.
                with contextlib.suppress(Exception):
                    await asyncio.shield(run_rows.save_run(self.db, self.run_id, self.totals,
                                                           status=status))

    def _options_row(self) -> dict[str, Any]:
        o = self.options
        return {"collection": self.target.collection, "embedder": self.target.embedder,
                "tags": list(o.tags), "include": list(o.include), "exclude": list(o.exclude),
                "prune": o.prune, "hidden": o.hidden, "force": o.force}

    async def _stages(self, found: Discovery) -> None:
        prepared: asyncio.Queue[Prepared | None] = asyncio.Queue(QUEUE_FILES)
        writes: asyncio.Queue[Any] = asyncio.Queue(QUEUE_FILES)
        paths = iter(found.files)
        children = [asyncio.create_task(self._prepare(paths, prepared))
                    for _ in range(PARSE_WORKERS)]
        children.append(asyncio.create_task(self._embed(prepared, writes, PARSE_WORKERS)))
        for child in children:
            # A failed stage would leave the others waiting on their queues: report it at
            # once, and the run stops.
            child.add_done_callback(self._report_failure)
        try:
            await self._write(writes)
            await asyncio.gather(*children)
            if self.options.prune:
                await self._prune(found)
            if self.target.actor == self.target.user_id:
                async with self.db.write() as s:
                    await store.collect_orphans(s, self.target.user_id)
            await self._flush_usage()
            if self.totals.chunks >= REFRESH_STATISTICS_AFTER:
                async with self.db.write() as s:
                    await for_backend(self.db.backend).refresh_statistics(s)
            await run_rows.save_run(self.db, self.run_id, self.totals, status="complete")
            self._out.put_nowait(self._result("complete"))
        except Exception as exc:
            self._out.put_nowait(_Failure(exc))
        finally:
            for child in children:
                child.cancel()
            await asyncio.gather(*children, return_exceptions=True)

    def _report_failure(self, task: asyncio.Task[None]) -> None:
        if not task.cancelled() and task.exception() is not None:
            self._out.put_nowait(_Failure(task.exception()))  # type: ignore[arg-type]

    def _result(self, status: str) -> IngestResult:
        t = self.totals
        return IngestResult(self.run_id, status, t.files_seen, t.indexed, t.skipped, t.failed,
                            t.pruned, t.chunks, tuple(t.errors), t.linked)

    # -- stage 1: prepare ---------------------------------------------------------------------
    async def _prepare(self, paths: Iterator[Path], out: asyncio.Queue[Prepared | None]) -> None:
        for path in paths:  # shared by the workers: each path is taken once
            item = await asyncio.to_thread(prepare_file, path, self.known.get(str(path)),
                                           self.prep)
            await out.put(item)
        await out.put(None)

    # -- stage 2: embed -----------------------------------------------------------------------
    async def _embed(self, inbox: asyncio.Queue[Prepared | None], out: asyncio.Queue[Any],
                     producers: int) -> None:
        buffer: deque[tuple[_Pending, int]] = deque()
        dimension = self.embedder.dimension
        while producers or buffer:
            if producers and (len(buffer) < EMBED_CALL and (not buffer or not inbox.empty())):
                item = await inbox.get()
                if item is None:
                    producers -= 1
                elif item.outcome == "index":
                    pending = _Pending(item, dimension)
                    buffer.extend((pending, i) for i in range(len(item.chunks)))
                else:
                    await out.put(("file", item, None))
                continue
            batch = [buffer.popleft() for _ in range(min(EMBED_CALL, len(buffer)))]
            vectors = await self._embed_texts([p.item.chunks[i].text for p, i in batch])
            for row, (pending, i) in enumerate(batch):
                pending.vectors[i] = vectors[row]
                pending.remaining -= 1
                if pending.remaining == 0:
                    await out.put(("file", pending.item, pending.vectors))
        await out.put(None)

    async def _embed_texts(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        result = await self.embedder.embed(texts)
        latency = (time.perf_counter() - started) * 1000
        vectors = np.asarray(result.vectors, dtype=np.float32)
        if vectors.shape != (len(texts), self.embedder.dimension):
            raise ProviderError(
                f"the embedder returned vectors of shape {vectors.shape} for {len(texts)} "
                f"texts (expected dimension {self.embedder.dimension})",
                store.reembed_hint(self.target.collection))
        self._usage.append(usage_record(self.engine, result.prompt_tokens, result.estimated,
                                        latency))
        return vectors

    # -- stage 3: write -----------------------------------------------------------------------
    async def _write(self, inbox: asyncio.Queue[Any]) -> None:
        while (message := await inbox.get()) is not None:
            _, item, vectors = message
            if self._parked(item):
                continue
            await self._written_file(item, vectors)
            if time.monotonic() - self._saved_at > SAVE_EVERY_S:
                await self._durable(self._flush_usage, item.path)
                await self._durable(
                    lambda: run_rows.save_run(self.db, self.run_id, self.totals), item.path)
                self._saved_at = time.monotonic()
        await self._release_waiting()

    async def _durable(self, step: Callable[[], Awaitable[T]], path: str) -> T:
        """Run a database step; when the server went away under it (its transaction rolled
        back), say so, wait for the server, and run the step again (``engine.db.reconnect``).
        """
        while True:
            try:
                return await step()
            except ConnectionLost as exc:
                timeout = self.engine.settings.database.reconnect_timeout_s
                self._out.put_nowait(IngestProgress(
                    self.run_id, path, self._done, self.total, "reconnecting",
                    f"{exc.message}; waiting up to {timeout:g} s for it to come back"))
                if not await reconnect.wait_until_back(self.db, timeout):
                    raise ConnectionLost(
                        f"the database did not come back within {timeout:g} s "
                        f"({exc.message})", "run the same command again when it is back: "
                        "files already indexed are skipped") from exc

    async def _write_file(self, item: Prepared, vectors: np.ndarray | None) -> str:
        t = self.target
        # totals are counted after the write: a write retried after a reconnect counts once
        if item.outcome == "link":
            return await self._link(item)
        if item.outcome == "skip":
            if t.tags:
                async with self.db.write() as s:
                    await store.add_tags(s, self.known[item.path].id, t.tags)
            self.totals.skipped += 1
            return "skipped"
        if item.outcome == "error" or vectors is None:
            async with self.db.write() as s:
                await store.write_failed(s, t, item)
            self.totals.fail(item.path, item.error or "unknown error")
            return "error"
        try:
            async with self.db.write() as s:
                await store.check_target(s, t)
                self._last_set = await store.write_indexed(s, t, item, vectors)
                await store.add_usage(s, t.actor, self._usage)
        except (DataError, IntegrityError) as exc:
            # This file's values cannot be stored (the transaction left nothing behind):
            # record it like any bad file. A lost connection is not caught: it stops the run.
            detail = str(getattr(exc, "orig", exc)).strip().splitlines()[0][:200]
            item.error = f"cannot store the document: {detail}"
            return await self._write_file(dataclasses.replace(item, outcome="error"), None)
        self._usage.clear()
        self.totals.indexed += 1
        self.totals.chunks += len(item.chunks)
        return "indexed"

    async def _flush_usage(self) -> None:
        if self._usage:
            async with self.db.write() as s:
                await store.add_usage(s, self.target.actor, self._usage)
            self._usage.clear()

    # -- pruning ------------------------------------------------------------------------------
    async def _prune(self, found: Discovery) -> None:
        seen = {str(p) for p in found.files}
        roots = [str(r) for r in found.roots]
        candidates = [(path, known.id) for path, known in self.known.items()
                      if path not in seen and any(_under(path, root) for root in roots)]
        gone = await asyncio.to_thread(lambda: [c for c in candidates if is_gone(c[0])])
        for path, doc_id in gone:
            async with self.db.write() as s:
                await store.delete_documents(s, self.target.user_id, [doc_id],
                                             self.target.actor)
            self.totals.pruned += 1
            self._out.put_nowait(IngestProgress(self.run_id, path, self._done, self.total,
                                                "pruned"))


def _under(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


def usage_record(engine: Engine, tokens: int, estimated: bool,
                 latency_ms: float) -> store.UsageRecord:
    """The ``token_usage`` row of one embedding call (the local model costs nothing)."""
    emb = engine.settings.embedding
    cost = 0.0
    if emb.provider != "local":
        provider = engine.settings.providers.get(emb.provider)
        model = provider.models.get(emb.model) if provider else None
        cost = (model.input_price * tokens / 1_000_000) if model else 0.0
    return store.UsageRecord(emb.provider, emb.model, int(tokens), bool(estimated), cost,
                             latency_ms)
