"""Identical content under two paths or in two collections is chunked and embedded once."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import func, select

from engine import Engine
from engine.db import models as m
from engine.db.search_backend import for_backend
from tests.engine.test_ingest import index_state

NOTE = ("# Lighthouses\n\nThe keeper of the turquoise lighthouse logged every storm.\n\n"
        + "\n".join(f"Line {i} of the harbour log mentions gulls and tides." for i in range(60)))


def count_embedded(engine: Engine) -> list[int]:
    """Texts per embedding call from now on."""
    embedder = engine.embedder()
    calls: list[int] = []
    real = embedder.embed

    async def embed(texts: list[str]):  # type: ignore[no-untyped-def]
        calls.append(len(texts))
        return await real(texts)

    embedder.embed = embed  # type: ignore[method-assign]
    return calls


async def _count(engine: Engine, model: type) -> int:
    assert engine.db is not None
    async with engine.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def _keyword_paths(engine: Engine, collection: str, query: str) -> list[str]:
    return [h.path for h in await engine.retrieval.search(query, collections=[collection])]


async def test_two_copies_in_one_run_are_chunked_and_embedded_once(engine: Engine,
                                                                   tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "a.md").write_text(NOTE)
    (docs / "sub" / "copy.md").write_text(NOTE)
    (docs / "other.md").write_text("Something else entirely about kites.")
    calls = count_embedded(engine)
    result = await engine.library.ingest([docs], collection="notes")
    assert (result.indexed, result.linked, result.failed) == (3, 1, 0)
    chunks = await _count(engine, m.Chunk)
    assert sum(calls) == chunks, "each chunk is embedded exactly once"
    assert await _count(engine, m.ChunkSet) == 2
    state = await index_state(engine, "notes", docs)  # one vector per chunk, FTS in sync
    assert state["docs"]["a.md"][2] == state["docs"]["sub/copy.md"][2] > 1
    listed = {d.path: d for d in await engine.library.documents("notes")}
    assert listed[str(docs / "a.md")].copies == (("notes", str(docs / "sub" / "copy.md")),)
    assert listed[str(docs / "sub" / "copy.md")].copies == (("notes", str(docs / "a.md")),)
    assert listed[str(docs / "other.md")].copies == ()
    hits = await engine.retrieval.search("turquoise lighthouse keeper", collections=["notes"])
    # one hit per passage, not one per copy
    assert len({h.chunk_id for h in hits}) == len(hits)
    assert hits[0].path == str(docs / "a.md")
    # a rerun changes nothing and embeds nothing
    calls.clear()
    again = await engine.library.ingest([docs], collection="notes")
    assert (again.indexed, again.skipped, calls) == (0, 3, [])


async def test_a_copy_in_another_collection_reuses_chunks_and_vectors(engine: Engine,
                                                                      tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    first, second = tmp_path / "a" / "note.md", tmp_path / "b" / "renamed.md"
    first.write_text(NOTE)
    second.write_text(NOTE)
    await engine.library.ingest([first], collection="one")
    chunks = await _count(engine, m.Chunk)
    calls = count_embedded(engine)
    result = await engine.library.ingest([second], collection="two")
    assert (result.indexed, result.linked) == (1, 1)
    assert calls == [], "a copy is never embedded again"
    assert await _count(engine, m.Chunk) == chunks
    await index_state(engine, "two", tmp_path)  # its own vector index holds the copied vectors
    # a hit names the path in the searched collection, by keywords and by vectors
    assert (await _keyword_paths(engine, "one", "turquoise"))[0] == str(first)
    assert (await _keyword_paths(engine, "two", "turquoise"))[0] == str(second)
    both = await engine.retrieval.search("turquoise", collections=["one", "two"])
    assert both[0].path == str(first) and len({h.chunk_id for h in both}) == len(both)
    assert engine.db is not None
    info = await engine.library.collection("two")
    query = await engine.embedder().embed_query("the keeper logged every storm")
    async with engine.db.read() as s:
        near = await for_backend(engine.db.backend).knn(s, info.id, 1, query, 3)
    assert near, "vector search finds the copy in its own collection"
    listed = await engine.library.documents("two")
    assert listed[0].copies == (("one", str(first)),)


async def test_deleting_one_copy_keeps_the_other_whole(engine: Engine, tmp_path: Path) -> None:
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "note.md").write_text(NOTE)
    await engine.library.ingest([tmp_path / "a"], collection="one")
    await engine.library.ingest([tmp_path / "b"], collection="two")
    await engine.library.ingest([tmp_path / "b"], collection="one")  # second path in "one"
    chunks = await _count(engine, m.Chunk)
    await engine.library.remove_documents(tmp_path / "a" / "note.md", collection="one")
    assert await _count(engine, m.Chunk) == chunks
    assert (await _keyword_paths(engine, "one", "turquoise"))[0] == str(tmp_path / "b/note.md")
    await index_state(engine, "one", tmp_path)
    await index_state(engine, "two", tmp_path)
    # removing the copy from "one" leaves "one" empty but "two" whole
    await engine.library.remove_documents(tmp_path / "b" / "note.md", collection="one")
    assert await _keyword_paths(engine, "one", "turquoise") == []
    assert (await _keyword_paths(engine, "two", "turquoise"))[0] == str(tmp_path / "b/note.md")
    state = await index_state(engine, "two", tmp_path)
    assert len(state["chunks"]) == chunks
    # the last copy takes its chunks, vectors and keyword rows with it
    await engine.library.delete_collection("two")
    assert (await _count(engine, m.Chunk), await _count(engine, m.ChunkEmbedding),
            await _count(engine, m.ChunkSet)) == (0, 0, 0)


async def test_changing_one_copy_splits_them(engine: Engine, tmp_path: Path) -> None:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text(NOTE)
    (docs / "b.md").write_text(NOTE)
    await engine.library.ingest([docs], collection="notes")
    (docs / "b.md").write_text(NOTE.replace("turquoise", "vermilion"))
    calls = count_embedded(engine)
    result = await engine.library.ingest([docs], collection="notes")
    assert (result.indexed, result.skipped, result.linked) == (1, 1, 0)
    assert sum(calls) == (await engine.library.documents("notes"))[1].chunk_count
    assert await _count(engine, m.ChunkSet) == 2
    for word, path in (("turquoise", "a.md"), ("vermilion", "b.md")):
        hits = await engine.retrieval.search(word, collections=["notes"])
        assert {h.path for h in hits if word in h.text} == {str(docs / path)}
    assert all(d.copies == () for d in await engine.library.documents("notes"))
    await index_state(engine, "notes", docs)
    # changing it back joins them again without embedding
    (docs / "b.md").write_text(NOTE)
    calls.clear()
    back = await engine.library.ingest([docs], collection="notes")
    assert (back.indexed, back.linked, calls) == (1, 1, [])
    assert await _count(engine, m.ChunkSet) == 1
    await index_state(engine, "notes", docs)
