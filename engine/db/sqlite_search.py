"""SQLite's vector and keyword search: per-collection vec0 tables and FTS5 BM25.

Each collection generation gets a vec0 table ``vec_c{collection}_g{generation}`` sized to its
embedder's dimension. ``chunk_embeddings`` (float32 BLOBs) stays the source of truth: two
triggers per vec0 table copy inserts and deletes into it, so every write path, including
cascaded deletes of documents and chunks, keeps the index in sync.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db.fts_query import fts5_match


def vec_table(collection_id: int, generation: int) -> str:
    return f"vec_c{int(collection_id)}_g{int(generation)}"


async def create_vector_index(s: AsyncSession, collection_id: int, generation: int,
                              dimension: int) -> None:
    """Create the vec0 table and its sync triggers; copy any vectors already stored."""
    table = vec_table(collection_id, generation)
    cid, gen = int(collection_id), int(generation)
    await s.execute(text(
        f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0("
        f"chunk_id integer primary key, embedding float[{int(dimension)}] "
        "distance_metric=cosine)"))
    await s.execute(text(
        f"CREATE TRIGGER IF NOT EXISTS {table}_ai AFTER INSERT ON chunk_embeddings "
        f"WHEN new.collection_id = {cid} AND new.generation = {gen} BEGIN "
        f"INSERT INTO {table}(chunk_id, embedding) VALUES (new.chunk_id, new.embedding); END"))
    await s.execute(text(
        f"CREATE TRIGGER IF NOT EXISTS {table}_ad AFTER DELETE ON chunk_embeddings "
        f"WHEN old.collection_id = {cid} AND old.generation = {gen} BEGIN "
        f"DELETE FROM {table} WHERE chunk_id = old.chunk_id; END"))
    await s.execute(text(
        f"INSERT INTO {table}(chunk_id, embedding) SELECT e.chunk_id, e.embedding "
        f"FROM chunk_embeddings e WHERE e.collection_id = {cid} AND e.generation = {gen} "
        f"AND e.chunk_id NOT IN (SELECT chunk_id FROM {table})"))


async def drop_vector_index(s: AsyncSession, collection_id: int, generation: int) -> None:
    table = vec_table(collection_id, generation)
    await s.execute(text(f"DROP TRIGGER IF EXISTS {table}_ai"))
    await s.execute(text(f"DROP TRIGGER IF EXISTS {table}_ad"))
    await s.execute(text(f"DROP TABLE IF EXISTS {table}"))


async def knn(s: AsyncSession, collection_id: int, generation: int, query: np.ndarray,
              k: int, ef_search: int = 0) -> list[tuple[int, float]]:
    """(chunk id, cosine distance) of the ``k`` nearest chunks, nearest first. Exact."""
    table = vec_table(collection_id, generation)
    blob = np.asarray(query, dtype=np.float32).tobytes()
    rows = await s.execute(
        text(f"SELECT chunk_id, distance FROM {table} WHERE embedding MATCH :q AND k = :k "
             "ORDER BY distance"), {"q": blob, "k": int(k)})
    return [(int(cid), float(dist)) for cid, dist in rows]


async def keyword(s: AsyncSession, collection_ids: Sequence[int], query: str,
                  k: int) -> list[tuple[int, float]]:
    """(chunk id, BM25 score, higher is better) of the best ``k`` keyword matches."""
    match = fts5_match(query)
    if match is None or not collection_ids:
        return []
    stmt = text(
        "SELECT c.id, -bm25(chunk_fts) AS score FROM chunk_fts "
        "JOIN chunks c ON c.id = chunk_fts.rowid "
        "WHERE chunk_fts MATCH :match AND c.collection_id IN :cids "
        "ORDER BY bm25(chunk_fts) LIMIT :k").bindparams(bindparam("cids", expanding=True))
    rows = await s.execute(stmt, {"match": match, "cids": list(collection_ids), "k": int(k)})
    return [(int(cid), float(score)) for cid, score in rows]
