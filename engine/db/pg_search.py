"""PostgreSQL's vector and keyword search: partial HNSW indexes and full-text search.

Vectors live in one untyped ``vector`` column; each collection generation gets a partial
HNSW index on ``embedding::vector(dim)`` restricted to its rows, so collections with
different embedders coexist and each query uses its own index.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sqlalchemy import bindparam, text
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db.fts_query import query_terms


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


async def knn(s: AsyncSession, collection_id: int, generation: int, query: np.ndarray,
              k: int, ef_search: int = 100) -> list[tuple[int, float]]:
    """(chunk id, cosine distance) of the ``k`` nearest chunks (HNSW, approximate)."""
    vector = np.asarray(query, dtype=np.float32)
    dim, cid, gen = int(vector.shape[0]), int(collection_id), int(generation)
    # SET LOCAL lasts until the end of this transaction only.
    await s.execute(text(f"SET LOCAL hnsw.ef_search = {max(int(ef_search), int(k))}"))
    rows = await s.execute(
        text(f"SELECT chunk_id, (embedding::vector({dim})) <=> :q AS distance "
             f"FROM chunk_embeddings WHERE collection_id = {cid} AND generation = {gen} "
             "ORDER BY distance LIMIT :k"), {"q": vector, "k": int(k)})
    return [(int(chunk_id), float(dist)) for chunk_id, dist in rows]


async def keyword(s: AsyncSession, collection_ids: Sequence[int], query: str,
                  k: int) -> list[tuple[int, float]]:
    """(chunk id, score, higher is better) of the best ``k`` keyword matches."""
    terms = query_terms(query)
    if not terms or not collection_ids:
        return []
    # Each term goes through plainto_tsquery (never parsed as syntax), then OR-ed together.
    ors = " || ".join(f"plainto_tsquery('english', :t{i})" for i in range(len(terms)))
    params = {f"t{i}": term for i, term in enumerate(terms)}
    stmt = text(
        f"SELECT c.id, ts_rank_cd(c.tsv, q, 1) AS score FROM chunks c, ({'SELECT ' + ors}) "
        "AS x(q) WHERE c.tsv @@ q AND c.collection_id IN :cids "
        "ORDER BY score DESC, c.id LIMIT :k").bindparams(bindparam("cids", expanding=True))
    rows = await s.execute(stmt, {**params, "cids": list(collection_ids), "k": int(k)})
    return [(int(cid), float(score)) for cid, score in rows]
