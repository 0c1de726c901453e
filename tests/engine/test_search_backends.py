"""Vector and keyword search at the storage level, the same on both backends."""

from __future__ import annotations

import numpy as np
import pytest
from sqlalchemy import func, select, text

from engine import Engine
from engine.db import models as m
from engine.db.search_backend import for_backend
from engine.ingest import store

# also on PostgreSQL with the pg_textsearch BM25 index: [postgres-bm25]
pytestmark = pytest.mark.keyword_index

TEXTS = [
    "The quick brown fox jumps over the lazy dog",
    "PostgreSQL stores vectors with the pgvector extension",
    "SQLite keeps full text search in an FTS5 virtual table",
    "Foxes are small omnivorous mammals",
    "Encryption at rest uses Fernet tokens",
]


def unit(seed: int, dim: int = 8) -> np.ndarray:
    vec = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return vec / np.linalg.norm(vec)


async def _fill(engine: Engine) -> tuple[int, list[int]]:
    assert engine.db is not None
    backend = for_backend(engine.db.backend)
    async with engine.db.write() as s:
        coll = m.Collection(user_id=engine.user_id, name="notes", embedder="test", dimension=8)
        s.add(coll)
        await s.flush()
        await backend.create_vector_index(s, coll.id, 1, 8)
        chunk_set = m.ChunkSet(user_id=engine.user_id, created_by=engine.user_id, content_hash="h")
        s.add(chunk_set)
        await s.flush()
        doc = m.Document(user_id=engine.user_id, collection_id=coll.id, source_path="/n.md",
                         path_hash="h", chunk_set_id=chunk_set.id)
        s.add(doc)
        await s.flush()
        ids = []
        for i, body in enumerate(TEXTS):
            chunk = m.Chunk(user_id=engine.user_id, chunk_set_id=chunk_set.id, chunk_index=i,
                            text=body, content_hash=str(i), char_start=0,
                            char_end=len(body))
            s.add(chunk)
            await s.flush()
            s.add(m.ChunkEmbedding(chunk_id=chunk.id, generation=1, collection_id=coll.id,
                                   embedding=unit(i)))
            ids.append(chunk.id)
    return coll.id, ids


async def test_knn_finds_the_exact_vector_first(engine: Engine) -> None:
    coll_id, ids = await _fill(engine)
    assert engine.db is not None
    backend = for_backend(engine.db.backend)
    async with engine.db.read() as s:
        hits = await backend.knn(s, coll_id, 1, unit(3), 3)
    assert hits[0][0] == ids[3]
    assert abs(hits[0][1]) < 1e-5
    # the full ranking is the exact cosine ranking
    expected = sorted(range(5), key=lambda i: -float(unit(i) @ unit(3)))[:3]
    assert [h[0] for h in hits] == [ids[i] for i in expected]


async def test_keyword_search_is_stemmed_and_safe(engine: Engine) -> None:
    coll_id, ids = await _fill(engine)
    assert engine.db is not None
    backend = for_backend(engine.db.backend)
    async with engine.db.read() as s:
        fox = await backend.keyword(s, [coll_id], "fox", 10)
        assert {cid for cid, _ in fox} == {ids[0], ids[3]}  # "Foxes" stems to fox
        vectors = await backend.keyword(s, [coll_id], "pgvector vectors", 10)
        assert vectors[0][0] == ids[1]
        for nasty in ['"unbalanced', "fox AND", "NEAR(fox", "*", "-fox", "((fox", "OR", ""]:
            await backend.keyword(s, [coll_id], nasty, 10)  # never a syntax error


async def test_deleting_a_document_removes_chunks_vectors_and_keywords(engine: Engine) -> None:
    coll_id, ids = await _fill(engine)
    assert engine.db is not None
    backend = for_backend(engine.db.backend)
    async with engine.db.write() as s:
        # documents share chunk sets with identical copies: the store releases what no
        # document holds any more
        doc_ids = list((await s.scalars(select(m.Document.id))).all())
        await store.delete_documents(s, engine.user_id, doc_ids)
    async with engine.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(m.Chunk)) == 0
        assert await s.scalar(select(func.count()).select_from(m.ChunkEmbedding)) == 0
        assert await backend.keyword(s, [coll_id], "fox", 10) == []
        assert await backend.knn(s, coll_id, 1, unit(3), 3) == []
        if engine.db.backend == "sqlite":
            fts_rows = await s.scalar(
                text("SELECT count(*) FROM chunk_fts WHERE chunk_fts MATCH 'fox'"))
            assert fts_rows == 0
