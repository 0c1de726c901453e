"""Synthetic corpora for ``bench/search_latency.py``: Zipf texts and clustered vectors.

Vectors cluster around real MiniLM embeddings of SciFact when ``bench/scifact.py`` has
cached them (else around random centres), with noise that leaves each vector at a cosine of
about 0.8 from its centre. Everything is seeded: the same size gives the same corpus.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from bench.bench_support import RESULTS

DIM = 384
WORDS_PER_CHUNK = 100
CHUNKS_PER_DOC = 10
BATCH = 20_000
_VOCAB = 30_000


def _vocabulary() -> np.ndarray:
    rng = np.random.default_rng(7)
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    return np.array(["".join(rng.choice(letters, size=rng.integers(3, 10)))
                     for _ in range(_VOCAB)])


def _centres() -> np.ndarray:
    cached = sorted((RESULTS / "embeddings").glob("*.npz"))
    if cached:
        vectors = np.load(cached[0])["vectors"]
        if vectors.shape[1] == DIM and len(vectors) >= 1000:
            return vectors.astype(np.float32)
    rng = np.random.default_rng(11)
    centres = rng.normal(size=(2000, DIM)).astype(np.float32)
    return centres / np.linalg.norm(centres, axis=1, keepdims=True)


def _vectors(rng: np.random.Generator, centres: np.ndarray, n: int) -> np.ndarray:
    picked = centres[rng.integers(0, len(centres), size=n)]
    noisy = picked + rng.normal(scale=0.75 / np.sqrt(DIM), size=(n, DIM)).astype(np.float32)
    return (noisy / np.linalg.norm(noisy, axis=1, keepdims=True)).astype(np.float32)


def _zipf_ids(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.minimum(rng.zipf(1.1, size=n), _VOCAB) - 1


def batches(size: int) -> Iterator[tuple[int, list[str], np.ndarray]]:
    """(first chunk id, texts, vectors) in batches; chunk ids start at 1."""
    vocab, centres = _vocabulary(), _centres()
    rng = np.random.default_rng(size)
    for first in range(0, size, BATCH):
        n = min(BATCH, size - first)
        words = vocab[_zipf_ids(rng, n * WORDS_PER_CHUNK)].reshape(n, WORDS_PER_CHUNK)
        yield first + 1, [" ".join(row) for row in words], _vectors(rng, centres, n)


def make_queries(n: int) -> tuple[list[str], np.ndarray]:
    """Query texts of 3-6 mid-frequency words, and query vectors from the same clusters."""
    vocab, centres = _vocabulary(), _centres()
    rng = np.random.default_rng(12345)
    texts = [" ".join(vocab[rng.integers(20, 3000, size=rng.integers(3, 7))]) for _ in range(n)]
    return texts, _vectors(rng, centres, n)


async def bulk_load(engine: Any, size: int) -> float:
    """Fill an empty database with ``size`` chunks in collection 1 (0.0 when already full)."""
    from sqlalchemy import func, select

    from engine.db import models as m
    from engine.db.search_backend import for_backend

    async with engine.db.read() as s:
        have = await s.scalar(select(func.count()).select_from(m.Chunk))
    if have == size:
        return 0.0
    if have:
        raise SystemExit(f"{engine.db.engine.url} holds {have} chunks, not {size}: remove it")
    started = time.perf_counter()
    backend = for_backend(engine.db.backend)
    embedder = engine.embedder()
    async with engine.db.write() as s:
        s.add(m.Collection(id=1, user_id=engine.user_id, name="bench", embedder=embedder.name,
                           dimension=DIM))
        await s.flush()
        await backend.create_vector_index(s, 1, 1, DIM)
    if engine.db.backend == "sqlite":
        await _load_sqlite(engine, size)
    else:
        await _load_postgres(engine, size)
    return time.perf_counter() - started


def _rows(engine: Any, first: int, texts: list[str]
          ) -> tuple[list[tuple], list[tuple], list[tuple]]:
    uid, now = engine.user_id, "2026-01-01 00:00:00"
    docs, chunks, sets = [], [], []
    for i, body in enumerate(texts):
        cid = first + i
        doc = (cid - 1) // CHUNKS_PER_DOC + 1
        if (cid - 1) % CHUNKS_PER_DOC == 0:
            docs.append((doc, uid, 1, f"/bench/{doc // 1000}/doc{doc}.txt",
                         hashlib.sha256(str(doc).encode()).hexdigest(), "text", 0, "indexed",
                         CHUNKS_PER_DOC, WORDS_PER_CHUNK * CHUNKS_PER_DOC, doc, now))
            sets.append((doc, uid, str(doc), "", CHUNKS_PER_DOC,
                         WORDS_PER_CHUNK * CHUNKS_PER_DOC, now))
        chunks.append((cid, uid, doc, (cid - 1) % CHUNKS_PER_DOC, body, str(cid), 0,
                       len(body), WORDS_PER_CHUNK))
    return docs, chunks, sets


DOC_COLS = ("id", "user_id", "collection_id", "source_path", "path_hash", "kind", "size",
            "status", "chunk_count", "token_count", "chunk_set_id", "created_at")
SET_COLS = ("id", "user_id", "content_hash", "suffix", "chunk_count", "token_count",
            "created_at")
CHUNK_COLS = ("id", "user_id", "chunk_set_id", "chunk_index", "text",
              "content_hash", "char_start", "char_end", "token_count")


async def _load_sqlite(engine: Any, size: int) -> None:
    import sqlean
    import sqlite_vec

    from engine.db.connect import sqlite_path

    conn = sqlean.connect(str(sqlite_path(str(engine.db.engine.url))), isolation_level=None)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.execute("PRAGMA synchronous=OFF")
    try:
        for first, texts, vectors in batches(size):
            docs, chunks, sets = _rows(engine, first, texts)
            conn.execute("BEGIN IMMEDIATE")
            conn.executemany(f"INSERT INTO chunk_sets ({','.join(SET_COLS)}) VALUES "
                             f"({','.join('?' * len(SET_COLS))})", sets)
            conn.executemany(f"INSERT INTO documents ({','.join(DOC_COLS)}) VALUES "
                             f"({','.join('?' * len(DOC_COLS))})", docs)
            conn.executemany(f"INSERT INTO chunks ({','.join(CHUNK_COLS)}) VALUES "
                             f"({','.join('?' * len(CHUNK_COLS))})", chunks)
            conn.executemany("INSERT INTO chunk_embeddings (chunk_id, generation, collection_id, "
                             "embedding) VALUES (?, 1, 1, ?)",
                             [(first + i, v.tobytes()) for i, v in enumerate(vectors)])
            conn.execute("COMMIT")
    finally:
        conn.close()


async def _load_postgres(engine: Any, size: int) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import text

    from engine.db import pg_search

    raw = await engine.db.engine.raw_connection()
    conn = raw.driver_connection
    now = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        await conn.execute(f"DROP INDEX IF EXISTS {pg_search.index_name(1, 1)}")
        for first, texts, vectors in batches(size):
            docs, chunks, sets = _rows(engine, first, texts)
            await conn.copy_records_to_table("chunk_sets", columns=SET_COLS,
                                             records=[r[:-1] + (now,) for r in sets])
            await conn.copy_records_to_table("documents", columns=DOC_COLS,
                                             records=[d[:-1] + (now,) for d in docs])
            await conn.copy_records_to_table("chunks", columns=CHUNK_COLS, records=chunks)
            await conn.copy_records_to_table(
                "chunk_embeddings", columns=("chunk_id", "generation", "collection_id",
                                             "embedding"),
                records=[(first + i, 1, 1, v) for i, v in enumerate(vectors)])
    finally:
        raw.close()
    async with engine.db.write() as s:
        await s.execute(text("SET LOCAL maintenance_work_mem = '2GB'"))
        await pg_search.create_vector_index(s, 1, 1, DIM)
        await s.execute(text("ANALYZE"))
