"""Collections, documents and re-embedding on both backends: deletes really delete."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from sqlalchemy import func, select, text, update

from engine import Engine
from engine.db import models as m
from engine.db.search_backend import for_backend
from engine.errors import EmbedderMismatch, NotFound, ParleyError, UsageError
from engine.ingest import reembed
from engine.types import ReindexProgress, ReindexResult
from tests.engine.test_ingest import copy_fixtures, index_state, ingest_all


async def _vector_indexes(engine: Engine, collection_id: int) -> set[str]:
    """Names of the vector tables (SQLite) or HNSW indexes (PostgreSQL) of a collection."""
    assert engine.db is not None
    prefix = f"vec_c{collection_id}_g" if engine.db.backend == "sqlite" else \
        f"ix_vec_c{collection_id}_g"
    sql = ("SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE :p"
           if engine.db.backend == "sqlite" else
           "SELECT indexname FROM pg_indexes WHERE indexname LIKE :p")
    async with engine.db.read() as s:
        names = (await s.execute(text(sql), {"p": prefix + "%"})).scalars().all()
    # sqlite-vec keeps shadow tables (_chunks, _rowids, ...) beside each vec0 table
    return {n for n in names if re.fullmatch(re.escape(prefix) + r"\d+(_bit)?", n)}


async def _keyword(engine: Engine, collection_id: int, query: str) -> list[int]:
    assert engine.db is not None
    async with engine.db.read() as s:
        hits = await for_backend(engine.db.backend).keyword(s, [collection_id], query, 10)
    return [chunk_id for chunk_id, _ in hits]


async def _count(engine: Engine, model: type[m.Base]) -> int:
    assert engine.db is not None
    async with engine.db.read() as s:
        return int(await s.scalar(select(func.count()).select_from(model)) or 0)


async def test_collections_create_list_rename_remove(engine: Engine) -> None:
    lib = engine.library
    created = await lib.create_collection("papers")
    assert (created.name, created.embedder, created.dimension) == (
        "papers", engine.embedder().name, engine.embedder().dimension)
    assert await _vector_indexes(engine, created.id)
    with pytest.raises(ParleyError, match="already exists"):
        await lib.create_collection("papers")
    await lib.create_collection("notes")
    assert [c.name for c in await lib.collections()] == ["notes", "papers"]
    renamed = await lib.rename_collection("papers", "articles")
    assert renamed.id == created.id
    with pytest.raises(ParleyError, match="already exists"):
        await lib.rename_collection("articles", "notes")
    with pytest.raises(NotFound):
        await lib.collection("papers")
    with pytest.raises(UsageError):
        await lib.create_collection("  ")
    await lib.delete_collection("articles")
    assert [c.name for c in await lib.collections()] == ["notes"]
    assert not await _vector_indexes(engine, created.id)


async def test_removing_a_collection_deletes_chunks_vectors_and_keywords(engine: Engine,
                                                                          tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    await ingest_all(engine, [docs], collection="notes")
    await ingest_all(engine, [docs / "notes.md"], collection="keep")
    notes = await engine.library.collection("notes")
    assert notes.document_count == 7 and notes.chunk_count > 7
    assert await _keyword(engine, notes.id, "turquoise")
    removed = await engine.library.delete_collection("notes")
    assert removed.chunk_count == notes.chunk_count
    assert await _keyword(engine, notes.id, "turquoise") == []
    assert not await _vector_indexes(engine, notes.id)
    keep = await engine.library.collection("keep")
    assert await _count(engine, m.Chunk) == keep.chunk_count
    assert await _count(engine, m.ChunkEmbedding) == keep.chunk_count
    assert await _count(engine, m.Document) == 1
    await index_state(engine, "keep")  # the other collection's index is intact
    assert engine.db is not None
    async with engine.db.read() as s:
        audit = (await s.scalars(select(m.AuditLog).where(
            m.AuditLog.action == "collection.delete"))).all()
    assert [a.target for a in audit] == ["notes"]


async def test_documents_list_and_remove_by_id_file_and_folder(engine: Engine,
                                                               tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    (docs / "sub").mkdir()
    (docs / "sub" / "a.md").write_text("# A\n\nAlpha paragraph about zeppelins.\n")
    (docs / "sub" / "b.md").write_text("# B\n\nBeta paragraph about zeppelins.\n")
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7 nothing")
    await ingest_all(engine, [docs], collection="notes", tags=["survey", "2024"])
    lib = engine.library
    listed = await lib.documents("notes")
    assert [d.path for d in listed] == sorted(d.path for d in listed)
    assert len(listed) == 10 and all(d.tags == ("2024", "survey") for d in listed)
    failed = await lib.documents(status="error")
    assert [d.path for d in failed] == [str(docs / "broken.pdf")]
    assert failed[0].error and failed[0].chunk_count == 0
    with pytest.raises(NotFound):
        await lib.documents("nope")

    notes_md = next(d for d in listed if d.path.endswith("notes.md"))
    gone = await lib.remove_documents(notes_md.id)
    assert [d.id for d in gone] == [notes_md.id]
    cid = (await lib.collection("notes")).id
    assert await _keyword(engine, cid, "turquoise") == []
    with pytest.raises(NotFound):
        await lib.document(notes_md.id)

    assert [d.path for d in await lib.remove_documents(str(docs / "guide.rst"))] == [
        str(docs / "guide.rst")]
    assert await _keyword(engine, cid, "zeppelins")
    under = await lib.remove_documents(docs / "sub")
    assert sorted(Path(d.path).name for d in under) == ["a.md", "b.md"]
    assert await _keyword(engine, cid, "zeppelins") == []
    with pytest.raises(NotFound):
        await lib.remove_documents(docs / "sub")
    state = await index_state(engine, "notes", docs)  # no orphan vectors or keyword rows
    assert set(state["docs"]) == {"manual.adoc", "page.html", "telescope.py", "readme.txt",
                                  "report.pdf", "broken.pdf"}
    assert engine.db is not None
    async with engine.db.read() as s:
        tags = await s.scalar(select(func.count()).select_from(m.DocumentTag))
    assert tags == 2 * 6


async def _pretend_indexed_with(engine: Engine, name: str, embedder: str) -> None:
    assert engine.db is not None
    async with engine.db.write() as s:
        await s.execute(update(m.Collection).where(m.Collection.name == name)
                        .values(embedder=embedder))


async def test_reindex_embed_swaps_in_new_vectors_and_drops_the_old(engine: Engine,
                                                                     tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    await ingest_all(engine, [docs], collection="notes")
    before = await index_state(engine, "notes", docs)
    coll = await engine.library.collection("notes")
    await _pretend_indexed_with(engine, "notes", "local/older-model")
    with pytest.raises(EmbedderMismatch):
        await engine.library.check_embedder("notes")

    result = await engine.library.run_reindex("notes")
    assert (result.status, result.generation, result.previous_embedder) == (
        "complete", 2, "local/older-model")
    assert result.chunks == len(before["chunks"])
    assert (await engine.library.check_embedder("notes")).embedder == engine.embedder().name
    assert await index_state(engine, "notes", docs) == before  # chunks untouched, vectors new
    assert await _count(engine, m.ChunkEmbedding) == len(before["chunks"])  # old ones dropped
    names = await _vector_indexes(engine, coll.id)
    assert names and all("_g2" in n for n in names)
    again = await engine.library.reindex("notes")  # awaiting gives the result alone
    assert again.status == "unchanged" and again.generation == 2
    forced = await engine.library.run_reindex("notes", force=True)
    assert (forced.status, forced.generation) == ("complete", 3)
    ingested, _ = await ingest_all(engine, [docs], collection="notes")
    assert ingested.skipped == 7  # the collection works normally after the swap


async def test_reindex_resumes_and_keyword_search_works_meanwhile(
        engine: Engine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reembed, "BATCH", 4)
    docs = copy_fixtures(tmp_path / "docs")
    await ingest_all(engine, [docs], collection="notes")
    before = await index_state(engine, "notes", docs)
    total = len(before["chunks"])
    coll = await engine.library.collection("notes")
    await _pretend_indexed_with(engine, "notes", "local/older-model")

    events = engine.library.reindex("notes")
    seen: list[ReindexProgress] = []
    async for event in events:
        assert isinstance(event, ReindexProgress)
        seen.append(event)
        if event.done >= 8:
            break
    await events.aclose()
    assert seen[0] == ReindexProgress("notes", 0, total)
    assert engine.db is not None
    async with engine.db.read() as s:
        row = await s.get(m.Collection, coll.id)
        pending = await s.scalar(select(func.count()).select_from(m.ChunkEmbedding)
                                 .where(m.ChunkEmbedding.generation == 2))
    assert row is not None and row.embedder == "local/older-model"
    assert (row.pending_embedder, row.vector_generation) == (engine.embedder().name, 1)
    assert pending == 8
    assert await _keyword(engine, coll.id, "turquoise")  # keyword search never stopped
    async with engine.db.read() as s:  # nor did vector search on the live generation
        live = await for_backend(engine.db.backend).knn(
            s, coll.id, 1, await engine.embedder().embed_query("rock flour"), 3)
    assert len(live) == 3

    result = await engine.library.run_reindex("notes")
    assert isinstance(result, ReindexResult)
    assert (result.status, result.chunks) == ("complete", total - 8)  # only what was left
    assert await index_state(engine, "notes", docs) == before


async def test_reindex_to_a_server_embedder_changes_the_dimension(
        engine: Engine, tmp_path: Path, database_url: str) -> None:
    from engine import load_settings
    from tests.support.openai_server import OpenAITestServer

    docs = copy_fixtures(tmp_path / "docs")
    await ingest_all(engine, [docs], collection="notes")
    before = await index_state(engine, "notes", docs)
    with OpenAITestServer(embedding_dim=32) as server:
        served_settings = load_settings(overrides={
            "database": {"url": database_url},
            "embedding": {"provider": "lab", "model": "test-embedding"},
            "providers": {"lab": server.provider_config()}})
        async with Engine(served_settings) as served:
            with pytest.raises(EmbedderMismatch, match="32 dimensions"):
                await ingest_all(served, [docs], collection="notes")
            result = await served.library.reindex("notes")
            assert (result.dimension, result.generation, result.chunks) == (
                32, 2, len(before["chunks"]))
            assert result.embedder == served.embedder().name
            assert await index_state(served, "notes", docs) == before
            coll = await served.library.check_embedder("notes")
            assert served.db is not None
            async with served.db.read() as s:
                # The test server's embeddings are hashed bags of words: a chunk's own text
                # finds that chunk first only if its new vector is stored under its id.
                target = (await s.scalars(select(m.Chunk).where(
                    m.Chunk.text.contains("turquoise")))).first()
                assert target is not None
                query = await served.embedder().embed_query(target.text)
                hits = await for_backend(served.db.backend).knn(s, coll.id, 2, query, 1)
                usage = (await s.scalars(select(m.TokenUsage).where(
                    m.TokenUsage.provider == "lab"))).all()
            assert hits[0][0] == target.id and hits[0][1] < 1e-4
            assert usage and sum(u.embedding_tokens for u in usage) > 0
            assert not any(u.estimated for u in usage)  # the server reported its counts
    with pytest.raises(EmbedderMismatch) as mismatch:
        await engine.library.check_embedder("notes")
    assert "parley reindex --embed --collection notes" in (mismatch.value.hint or "")
