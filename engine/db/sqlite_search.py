"""SQLite's vector and keyword search: per-collection vec0 tables and FTS5 BM25.

Each collection generation gets a vec0 table ``vec_c{collection}_g{generation}`` sized to its
embedder's dimension (exact float KNN), and beside it a 1-bit table ``..._bit`` (sign
quantisation: 32x smaller, about 20x faster to scan). ``chunk_embeddings`` (float32 BLOBs)
stays the source of truth: triggers copy inserts and deletes into both tables, so every
write path, including cascaded deletes of documents and chunks, keeps them in sync.

Collections larger than ``retrieval.quantize_above`` take an oversampled candidate list by
Hamming distance of the sign bits (``engine/db/sqlite_bits.py`` keeps them in memory; the
bit table serves until that copy is ready) and re-rank it exactly from the float32 BLOBs
(``bench/search_latency.py`` measures speed and recall against the exact search).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import sqlite_bits
from engine.db.connect import sqlite_path
from engine.db.fts_query import fts5_match
from engine.db.search_filter import DocFilter, chunk_ids_subquery, in_scope, placeholders

BACKEND = "sqlite"


def vec_table(collection_id: int, generation: int) -> str:
    return f"vec_c{int(collection_id)}_g{int(generation)}"


def bit_table(collection_id: int, generation: int) -> str:
    return vec_table(collection_id, generation) + "_bit"


def vector_index_ddl(collection_id: int, generation: int, dimension: int) -> list[str]:
    """The statements creating one generation's vec0 tables and their sync triggers, and
    copying any vectors already stored (idempotent; the migrations replay them after a table
    rebuild drops the triggers)."""
    cid, gen, dim = int(collection_id), int(generation), int(dimension)
    tables = [(vec_table(cid, gen), f"float[{dim}] distance_metric=cosine", "{}")]
    if dim % 8 == 0:  # sqlite-vec packs bits by the byte
        tables.append((bit_table(cid, gen), f"bit[{dim}]", "vec_quantize_binary({})"))
    out: list[str] = []
    for table, column, convert in tables:
        out += [
            f"CREATE VIRTUAL TABLE IF NOT EXISTS {table} USING vec0("
            f"chunk_id integer primary key, embedding {column})",
            f"CREATE TRIGGER IF NOT EXISTS {table}_ai AFTER INSERT ON chunk_embeddings "
            f"WHEN new.collection_id = {cid} AND new.generation = {gen} BEGIN "
            f"INSERT INTO {table}(chunk_id, embedding) "
            f"VALUES (new.chunk_id, {convert.format('new.embedding')}); END",
            f"CREATE TRIGGER IF NOT EXISTS {table}_ad AFTER DELETE ON chunk_embeddings "
            f"WHEN old.collection_id = {cid} AND old.generation = {gen} BEGIN "
            f"DELETE FROM {table} WHERE chunk_id = old.chunk_id; END",
            # The ids already present go through a temp table: a SELECT that reads the
            # vec0 table it inserts into is materialised first, which strips the bit
            # vector's subtype ("expected to be of type bit").
            "DROP TABLE IF EXISTS temp.parley_vec_have",
            f"CREATE TEMP TABLE parley_vec_have AS SELECT chunk_id FROM {table}",
            f"INSERT INTO {table}(chunk_id, embedding) "
            f"SELECT e.chunk_id, {convert.format('e.embedding')} FROM chunk_embeddings e "
            f"WHERE e.collection_id = {cid} AND e.generation = {gen} "
            f"AND e.chunk_id NOT IN (SELECT chunk_id FROM temp.parley_vec_have)",
            "DROP TABLE temp.parley_vec_have"]
    return out


async def create_vector_index(s: AsyncSession, collection_id: int, generation: int,
                              dimension: int) -> None:
    """Create the vec0 tables and their sync triggers; copy any vectors already stored.

    Idempotent: calling it again on an older index adds what is missing (the bit table)."""
    for statement in vector_index_ddl(collection_id, generation, dimension):
        await s.execute(text(statement))


async def drop_vector_index(s: AsyncSession, collection_id: int, generation: int) -> None:
    for table in (vec_table(collection_id, generation), bit_table(collection_id, generation)):
        await s.execute(text(f"DROP TRIGGER IF EXISTS {table}_ai"))
        await s.execute(text(f"DROP TRIGGER IF EXISTS {table}_ad"))
        await s.execute(text(f"DROP TABLE IF EXISTS {table}"))


async def refresh_statistics(s: AsyncSession) -> None:
    """Nothing to do: FTS5 keeps its BM25 statistics as it goes."""


async def _exists(s: AsyncSession, table: str) -> bool:
    found = await s.scalar(text("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = :n"),
                           {"n": table})
    return found is not None


def prepare_knn(s: AsyncSession, k: int, ef_search: int) -> None:
    """Nothing to prepare on SQLite (PostgreSQL sends its HNSW setting early)."""


async def knn(s: AsyncSession, collection_id: int, generation: int, query: np.ndarray,
              k: int, ef_search: int = 0, *, flt: DocFilter | None = None,
              quantized: bool = False, oversample: int = 4) -> list[tuple[int, float]]:
    """(chunk id, cosine distance) of the ``k`` nearest chunks passing ``flt``, nearest first.

    Exact by default. ``quantized``: the ``k * oversample`` nearest by Hamming distance of
    the sign bits (from the in-memory copy when it is ready, else from the bit table),
    re-ranked by exact cosine distance; exact when the collection has no bit table."""
    vector = np.asarray(query, dtype=np.float32)
    cid, gen = int(collection_id), int(generation)
    params: dict[str, object] = {"q": vector.tobytes()}
    where = ""
    if flt:
        sub, fparams = chunk_ids_subquery(flt, BACKEND, [cid])
        where = f" AND chunk_id IN ({sub})"
        params.update(fparams)
    if quantized and await _exists(s, bit_table(cid, gen)):
        wanted = int(k) * max(int(oversample), 1)
        path = sqlite_path(str(s.bind.url))
        index = None if path is None else \
            sqlite_bits.lookup((str(path), cid, gen), await sqlite_bits.version(s, cid))
        if index is not None:
            allowed = None
            if flt:
                allowed = np.fromiter((r[0] for r in await s.execute(text(sub), fparams)),
                                      dtype=np.int64)
            ids = await asyncio.to_thread(sqlite_bits.nearest, index, vector, wanted, allowed)
            return await _rerank(s, ids.tolist(), cid, gen, vector, k)
        params["k"] = wanted
        rows = await s.execute(text(
            f"SELECT chunk_id FROM {bit_table(cid, gen)} "
            f"WHERE embedding MATCH vec_quantize_binary(:q) AND k = :k{where}"), params)
        return await _rerank(s, [int(r[0]) for r in rows], cid, gen, vector, k)
    params["k"] = int(k)
    rows = await s.execute(text(
        f"SELECT chunk_id, distance FROM {vec_table(cid, gen)} "
        f"WHERE embedding MATCH :q AND k = :k{where} ORDER BY distance"), params)
    return [(int(chunk_id), float(dist)) for chunk_id, dist in rows]


async def _rerank(s: AsyncSession, chunk_ids: list[int], collection_id: int, generation: int,
                  query: np.ndarray, k: int) -> list[tuple[int, float]]:
    """Exact cosine distances of ``chunk_ids`` from their float32 BLOBs; the best ``k``."""
    if not chunk_ids:
        return []
    ids, params = placeholders("r", chunk_ids)
    rows = (await s.execute(text(
        f"SELECT chunk_id, embedding FROM chunk_embeddings WHERE collection_id = :cid "
        f"AND generation = :gen AND chunk_id IN ({ids})"),
        {**params, "cid": int(collection_id), "gen": int(generation)})).all()
    matrix = np.stack([np.frombuffer(blob, dtype=np.float32) for _, blob in rows])
    norms = np.linalg.norm(matrix, axis=1) * max(float(np.linalg.norm(query)), 1e-12)
    distances = 1.0 - (matrix @ query) / np.maximum(norms, 1e-12)
    order = np.argsort(distances, kind="stable")[:k]
    return [(int(rows[i][0]), float(distances[i])) for i in order]


async def keyword(s: AsyncSession, collection_ids: Sequence[int], query: str, k: int, *,
                  flt: DocFilter | None = None) -> list[tuple[int, float]]:
    """(chunk id, BM25 score, higher is better) of the best ``k`` keyword matches.

    The FTS5 table serves every collection: the best ``4 * k`` matches overall are ranked
    first without touching ``chunks`` (3-4x faster at a million chunks), then scoped. When
    fewer than ``k`` of them are in scope, the scoped query runs over every match; either
    way the result is the exact top ``k`` of the scope."""
    match = fts5_match(query)
    if match is None or not collection_ids:
        return []
    cond, params = in_scope("c", collection_ids, flt, BACKEND, "cid")
    params.update({"match": match, "k": int(k), "over": 4 * int(k)})
    scope = f"WHERE {cond} "
    # bm25() is negative, best first; ties broken by id so results are stable.
    rows = (await s.execute(text(
        "SELECT c.id, -f.score FROM (SELECT rowid, bm25(chunk_fts) AS score FROM chunk_fts "
        "WHERE chunk_fts MATCH :match ORDER BY score LIMIT :over) AS f "
        f"JOIN chunks c ON c.id = f.rowid {scope}ORDER BY f.score, c.id LIMIT :k"),
        params)).all()
    if len(rows) < k:
        rows = (await s.execute(text(
            "SELECT c.id, -bm25(chunk_fts) FROM chunk_fts "
            f"JOIN chunks c ON c.id = chunk_fts.rowid {scope}AND chunk_fts MATCH :match "
            "ORDER BY bm25(chunk_fts), c.id LIMIT :k"), params)).all()
    return [(int(cid), float(score)) for cid, score in rows]
