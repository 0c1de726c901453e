"""A real watcher (watchfiles) on a temporary folder, on both backends.

Every step waits for its condition with a generous deadline (DEADLINE seconds: the suite
runs on loaded machines); nothing asserts a duration. On an idle machine each change is
searchable about half a second after it (``bench/library_sync.py`` measures it).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine import Engine
from engine.db import models as m
from engine.types import WatchEvent
from tests.engine.test_duplicates import count_embedded
from tests.engine.test_ingest import index_state

DEADLINE = 240.0


async def until(condition: Callable[[], Awaitable[bool]], what: str,
                seconds: float = DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    pause = 0.05
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {seconds:.0f} s: {what}")
        await asyncio.sleep(pause)
        # each check is a query: on a long wait, check less often and leave the CPU to the
        # indexing being waited for
        pause = min(pause * 1.5, 0.5)


async def paths(engine: Engine) -> set[str]:
    return {d.path for d in await engine.library.documents()}


async def chunk_count(engine: Engine) -> int:
    assert engine.db is not None
    async with engine.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(m.Chunk)) or 0)


@pytest.fixture
async def watching(engine: Engine, tmp_path: Path):  # type: ignore[no-untyped-def]
    root = tmp_path / "notes"
    root.mkdir()
    (root / "a.md").write_text("# Alpha\n\nThe first note talks about herons.\n")
    (root / ".hidden.md").write_text("never indexed")
    await engine.watched.add(root)
    events: list[WatchEvent] = []
    sync = engine.folder_sync(debounce_ms=300, on_event=events.append)
    stop = asyncio.Event()
    task = asyncio.create_task(sync.run(stop))
    await until(lambda: _seen(events, "watching"), "the catch-up run and watching")
    try:
        yield root.resolve(), events
    finally:
        stop.set()
        await asyncio.wait_for(task, DEADLINE)


async def _seen(events: list[WatchEvent], state: str) -> bool:
    return any(e.state == state for e in events)


async def test_a_watched_folder_follows_creates_edits_renames_moves_and_deletes(
        engine: Engine, watching) -> None:  # type: ignore[no-untyped-def]
    root, events = watching
    assert await paths(engine) == {str(root / "a.md")}, "the catch-up indexed the folder"
    calls = count_embedded(engine)

    (root / "b.md").write_text("# Beta\n\nKingfishers dive for fish.\n")
    await until(lambda: _found(engine, "kingfishers", root / "b.md"), "a created file")
    assert sum(calls) == 1

    # an editor's burst: several writes in a row are indexed as the last one
    runs_before = len(await engine.library.runs())
    for word in ("egrets", "storks", "cranes", "quokkas"):
        (root / "a.md").write_text(f"# Alpha\n\nThe first note talks about {word}.\n")
    await until(lambda: _found(engine, "quokkas", root / "a.md"), "the last write of a burst")
    assert len(await engine.library.runs()) - runs_before <= 2
    assert not await _found(engine, "egrets", root / "a.md")

    # a rename and a move keep chunks and vectors: nothing is embedded again
    calls.clear()
    (root / "a.md").rename(root / "renamed.md")
    await until(lambda: _has(engine, {str(root / "renamed.md"), str(root / "b.md")}),
                "a renamed file")
    (root / "sub").mkdir()
    (root / "b.md").rename(root / "sub" / "b.md")
    await until(lambda: _has(engine, {str(root / "renamed.md"), str(root / "sub" / "b.md")}),
                "a file moved into a sub-folder")
    assert calls == [], "renames and moves are matched by content hash"
    assert await _found(engine, "kingfishers", root / "sub" / "b.md")

    (root / "renamed.md").unlink()
    await until(lambda: _has(engine, {str(root / "sub" / "b.md")}), "a deleted file")
    await index_state(engine, "default", root)  # no duplicate chunk, one vector each
    assert await chunk_count(engine) == 1
    folder = (await engine.watched.list())[0]
    assert folder.last_sync_at is not None and folder.last_error is None


async def test_a_burst_of_500_files_is_batched(engine: Engine, watching) -> None:  # type: ignore[no-untyped-def]
    root, events = watching
    calls = count_embedded(engine)
    runs_before = len(await engine.library.runs())
    burst = root / "burst"
    burst.mkdir()
    for i in range(500):
        (burst / f"n{i:03}.txt").write_text(f"Note {i}: the number {i} is written as {i}.\n")
    # 500 files read, chunked and embedded: on a machine loaded by other work this alone can
    # take longer than one ordinary step's deadline
    await until(lambda: _count_docs(engine, 501), "500 new files indexed", 4 * DEADLINE)
    runs = len(await engine.library.runs()) - runs_before
    assert 1 <= runs <= 25, f"{runs} runs for one burst"  # batched, not one run per file
    assert sum(calls) == 500 and max(calls) > 1, "each chunk embedded once, many per call"
    state = await index_state(engine, "default", root)
    assert len(state["chunks"]) == 501


async def test_a_file_that_fails_is_recorded_and_retried_when_it_changes(
        engine: Engine, watching) -> None:  # type: ignore[no-untyped-def]
    root, _ = watching
    (root / "bad.pdf").write_bytes(b"%PDF-1.7 not really")
    await until(lambda: _status(engine, root / "bad.pdf", "error"), "a failed file recorded")
    # fixed: the next change of the file indexes it
    pdf = next((Path(__file__).resolve().parents[1] / "fixtures" / "ingest").rglob("*.pdf"))
    (root / "bad.pdf").write_bytes(pdf.read_bytes())
    await until(lambda: _status(engine, root / "bad.pdf", "indexed"), "the fixed file indexed")
    (root / "bad.pdf").unlink()
    await until(lambda: _gone(engine, root / "bad.pdf"), "a deleted file removed")


async def _found(engine: Engine, word: str, path: Path) -> bool:
    """The document at ``path`` is indexed with a chunk holding ``word`` (read from the
    tables: a search would embed the query and count as an embedder call)."""
    assert engine.db is not None
    async with engine.db.read() as s:
        found = await s.scalar(
            select(func.count()).select_from(m.Chunk)
            .join(m.Document, m.Document.chunk_set_id == m.Chunk.chunk_set_id)
            .where(m.Document.source_path == str(path), m.Document.status == "indexed",
                   func.lower(m.Chunk.text).contains(word)))
    return bool(found)


async def _has(engine: Engine, expected: set[str]) -> bool:
    return await paths(engine) == expected


async def _count_docs(engine: Engine, n: int) -> bool:
    return len(await engine.library.documents(status="indexed")) >= n


async def _status(engine: Engine, path: Path, status: str) -> bool:
    return any(d.path == str(path) and d.status == status
               for d in await engine.library.documents())


async def _gone(engine: Engine, path: Path) -> bool:
    return str(path) not in await paths(engine)
