"""PostgreSQL's vector and keyword search: partial HNSW indexes and BM25 over ``tsv``.

Vectors live in one untyped ``vector`` column; each collection generation gets a partial
HNSW index on ``embedding::vector(dim)`` restricted to its rows, so collections with
different embedders coexist and each query uses its own index. Keyword ranking is a real
BM25, not ``ts_rank``: through the ``pg_textsearch`` index when the server has it
(``engine/db/pg_textsearch.py``), else computed exactly in SQL (``engine/db/pg_bm25.py``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import pg_settings, pg_textsearch
from engine.db.pg_bm25 import bm25
from engine.db.search_filter import DocFilter, chunk_ids_subquery

BACKEND = "postgresql"
_iterative_scan: dict[str, bool] = {}


def index_name(collection_id: int, generation: int) -> str:
    return f"ix_vec_c{int(collection_id)}_g{int(generation)}"


async def create_vector_index(s: AsyncSession, collection_id: int, generation: int,
                              dimension: int) -> None:
    cid, gen, dim = int(collection_id), int(generation), int(dimension)
    await s.execute(text(
        f"CREATE INDEX IF NOT EXISTS {index_name(cid, gen)} ON chunk_embeddings USING hnsw "
        f"((embedding::vector({dim})) vector_cosine_ops) WITH (m = 16, ef_construction = 64) "
        f"WHERE collection_id = {cid} AND generation = {gen}"))


async def drop_vector_index(s: AsyncSession, collection_id: int, generation: int) -> None:
    await s.execute(text(f"DROP INDEX IF EXISTS {index_name(collection_id, generation)}"))


async def refresh_statistics(s: AsyncSession) -> None:
    """After a large ingest: the planner statistics that tell BM25 which words are common
    (autovacuum would refresh them too, but only a while later)."""
    await s.execute(text("ANALYZE chunks"))


async def _has_iterative_scan(s: AsyncSession) -> bool:
    """pgvector 0.8+ can keep walking the HNSW graph until enough rows pass a filter."""
    key = str(s.bind.url)
    if key not in _iterative_scan:
        version = await s.scalar(text(
            "SELECT extversion FROM pg_extension WHERE extname = 'vector'"))
        parts = tuple(int(p) for p in str(version or "0").split(".")[:2] if p.isdigit())
        _iterative_scan[key] = parts >= (0, 8)
    return _iterative_scan[key]


def _ef(ef_search: int, k: int) -> str:
    return str(min(max(int(ef_search), int(k)), 1000))


def prepare_knn(s: AsyncSession, k: int, ef_search: int) -> None:
    """Say before a search that ``knn`` will follow: its setting then travels with the
    keyword side's (no round trip of its own)."""
    pg_settings.defer(s, "hnsw.ef_search", _ef(ef_search, k))


async def knn(s: AsyncSession, collection_id: int, generation: int, query: np.ndarray,
              k: int, ef_search: int = 100, *, flt: DocFilter | None = None,
              quantized: bool = False, oversample: int = 4) -> list[tuple[int, float]]:
    """(chunk id, cosine distance) of the ``k`` nearest chunks passing ``flt`` (HNSW).

    ``quantized`` and ``oversample`` are SQLite's; HNSW needs neither."""
    vector = np.asarray(query, dtype=np.float32)
    dim, cid, gen = int(vector.shape[0]), int(collection_id), int(generation)
    params: dict[str, object] = {"q": vector}
    where = ""
    if flt and await _has_iterative_scan(s):
        pg_settings.defer(s, "hnsw.iterative_scan", "strict_order")
    # for this transaction only (with anything else deferred: one round trip)
    await pg_settings.apply(s, hnsw__ef_search=_ef(ef_search, k))
    if flt:
        sub, fparams = chunk_ids_subquery(flt, BACKEND, [cid])
        where = f" AND chunk_id IN ({sub})"
        params.update(fparams)
    # A literal LIMIT: a cached plan of a parameter LIMIT is costed for a tenth of the rows.
    rows = await s.execute(
        text(f"SELECT chunk_id, (embedding::vector({dim})) <=> :q AS distance "
             f"FROM chunk_embeddings WHERE collection_id = {cid} AND generation = {gen}{where} "
             f"ORDER BY distance LIMIT {int(k)}"), params)
    return [(int(chunk_id), float(dist)) for chunk_id, dist in rows]


async def keyword(s: AsyncSession, collection_ids: Sequence[int], query: str, k: int, *,
                  flt: DocFilter | None = None) -> list[tuple[int, float]]:
    """(chunk id, BM25 score, higher is better) of the best ``k`` keyword matches."""
    if not collection_ids or k <= 0:
        return []
    state = pg_textsearch.state_for(s.bind.url) or await pg_textsearch.detect(s)
    if state.uses_index:
        hits = await pg_textsearch.search(s, collection_ids, query, k, flt=flt)
        if hits is not None:
            return hits
        await pg_textsearch.restore_planning(s)
    return await bm25(s, collection_ids, query, k, flt=flt)
