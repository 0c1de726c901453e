"""Search latency at 10k, 100k and 1M chunks: p50/p95 of a full hybrid search and its parts.

Synthetic but shaped like the real thing: chunk texts are Zipf-distributed words (so
keyword postings have realistic lengths), vectors are 384-d unit vectors clustered around
real MiniLM embeddings of SciFact (noise added), so the quantised index meets the kind of
distribution it will meet in use. Schema, collection and indexes come from Parley; rows are
bulk-loaded with the native drivers (sqlean ``executemany``, asyncpg ``COPY``), and on
PostgreSQL the HNSW index is built after the load, as a restore would.

A full search is ``engine.retrieval.search(query, k=10)``: query embedding with the bundled
model, BM25, KNN, fusion, reading the hits. Databases are kept in ``bench/results/`` and
reused when they already hold the requested size.

    python bench/search_latency.py --sizes 10000,100000,1000000
    python bench/search_latency.py --pg --sizes 10000,100000
    python bench/search_latency.py --pg-bm25 --sizes 100000,1000000
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_support import RESULTS, postgres_url  # noqa: E402
from bench.latency_data import DIM, bulk_load, make_queries  # noqa: E402

QUERIES = 60
HNSW_RECALL = True  # --no-hnsw-recall: skip the exact vector scans (minutes at 1M chunks)
EXACT = True  # --no-exact: skip timing exact SQL BM25 next to the index (seconds a query at 1M)


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def show(name: str, ms: list[float]) -> None:
    print(f"  {name:44} p50 {pct(ms, 0.5):8.1f} ms   p95 {pct(ms, 0.95):8.1f} ms")


REPEAT = 1  # --repeat N: each timing is the best of N runs (on a machine loaded by others)


async def timed(fn: object, *args: object, **kwargs: object) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(REPEAT):
        started = time.perf_counter()
        result = await fn(*args, **kwargs)  # type: ignore[operator]
        best = min(best, (time.perf_counter() - started) * 1000)
    return best, result


async def measure(url: str, size: int) -> None:
    from engine import Engine, load_settings
    from engine.db.search_backend import for_backend

    settings = load_settings(overrides={"database": {"url": url}})
    async with Engine(settings, migrate=False) as admin:
        await admin.upgrade()
    async with Engine(settings) as engine:
        assert engine.db is not None
        built = await bulk_load(engine, size)
        print(f"{engine.db.backend}, {size:,} chunks"
              + (f" (loaded in {built:.0f} s)" if built else " (reused)"))
        keyword_info = await engine.keyword_search()
        print(f"  keyword search: {keyword_info.detail}")
        with_index = keyword_info.method == "pg_textsearch"
        texts, vectors = make_queries(QUERIES)
        backend = for_backend(engine.db.backend)
        retrieval = engine.retrieval
        embedder = engine.embedder()
        await retrieval.search(texts[0], k=10)  # loads the model, warms caches
        cid = 1
        parts: dict[str, list[float]] = {k: [] for k in (
            "full", "embed", "keyword", "cold", "exact", "bits", "memory", "hybrid_db",
            "full_sql", "keyword_sql", "hybrid_db_sql", "server")}
        recall: dict[str, list[float]] = {"bits": [], "memory": [], "bm25": []}
        quantized = engine.db.backend == "sqlite"
        if quantized:
            from engine.db import sqlite_bits

            for _ in range(2):  # the second search of a process starts the in-memory copy
                async with engine.db.read() as s:
                    await backend.knn(s, cid, 1, vectors[0], 10, quantized=True)
            started = time.perf_counter()
            await sqlite_bits.wait_ready()
            print(f"  in-memory bit copy built in {time.perf_counter() - started:.2f} s")
            memory_lookup = sqlite_bits.lookup
        for text, vector in zip(texts, vectors, strict=True):
            ms, _ = await timed(retrieval.search, text, k=10)
            parts["full"].append(ms)
            ms, _ = await timed(_hybrid_db, engine, backend, text, vector)
            parts["hybrid_db"].append(ms)
            if with_index and EXACT:  # the same searches with exact SQL BM25 as keyword side
                await _compare_exact(engine, backend, text, vector, parts, recall)
            if with_index:
                parts["server"].append(await _server_ms(engine, text, vector))
            ms, _ = await timed(embedder.embed_query, text)
            parts["embed"].append(ms)
            async with engine.db.read() as s:
                ms, _ = await timed(backend.keyword, s, [cid], text, 100)
                parts["keyword"].append(ms)
                if not quantized:  # as a fresh process meets these words (no cached df)
                    from engine.db import pg_bm25

                    pg_bm25._df_cache.clear()
                    ms, _ = await timed(backend.keyword, s, [cid], text, 100)
                    parts["cold"].append(ms)
                ms, exact = await timed(backend.knn, s, cid, 1, vector, 100,
                                        settings.retrieval.ef_search)
                parts["exact"].append(ms)
                if not quantized:
                    if HNSW_RECALL:
                        await _hnsw_recall(s, backend, vector, exact, recall)  # type: ignore[arg-type]
                    continue
                truth = {c for c, _ in exact[:10]}  # type: ignore[index]
                for name in ("bits", "memory"):
                    # "bits": as before the in-memory copy exists (sqlite-vec's bit table)
                    sqlite_bits.lookup = memory_lookup if name == "memory" else \
                        (lambda key, current: None)
                    ms, found = await timed(backend.knn, s, cid, 1, vector, 100,
                                            quantized=True)
                    sqlite_bits.lookup = memory_lookup
                    parts[name].append(ms)
                    recall[name].append(len(truth & {c for c, _ in found[:10]}) / 10)  # type: ignore[index]
        mode = "bits + re-rank" if quantized and size > settings.retrieval.quantize_above \
            else ("exact vec0" if quantized else f"HNSW ef_search={settings.retrieval.ef_search}")
        show(f"full search, k=10 (vectors: {mode})", parts["full"])
        show("hybrid, database part (keyword + HNSW + fusion)", parts["hybrid_db"])
        if with_index and EXACT:
            show("full search, k=10, keyword by exact SQL BM25", parts["full_sql"])
            show("hybrid, database part, exact SQL BM25", parts["hybrid_db_sql"])
            show("  keyword, exact SQL BM25 (100 candidates)", parts["keyword_sql"])
            print(f"  recall of the exact BM25 top 10 by the index's top 10: "
                  f"{statistics.mean(recall['bm25']):.3f} (min {min(recall['bm25']):.1f})")
        if with_index:
            show("hybrid, server execution time only (BM25 index + HNSW scans)",
                 parts["server"])
        show("  query embedding", parts["embed"])
        show("  keyword, BM25 (100 candidates)", parts["keyword"])
        if parts["cold"]:
            show("  keyword, BM25, document frequencies not cached", parts["cold"])
        show("  vector, " + ("exact vec0" if quantized else "HNSW") + " (100 candidates)",
             parts["exact"])
        for ef in HNSW_EF:
            if recall.get(f"ef{ef}"):
                print(f"  HNSW recall@100 against an exact scan, ef_search={ef}: "
                      f"{statistics.mean(recall[f'ef{ef}']):.3f}")
        if quantized:
            show("  vector, vec0 bit table + re-rank (100)", parts["bits"])
            show("  vector, in-memory bits + re-rank (100)", parts["memory"])
            print(f"  recall@10 against exact: vec0 bits {statistics.mean(recall['bits']):.3f}, "
                  f"in-memory bits {statistics.mean(recall['memory']):.3f}")


HNSW_EF = (100, 200, 400)


async def _hybrid_db(engine: object, backend: object, text: str, vector: object) -> None:
    """What retrieval does in the database for one query whose vector is known: both
    candidate lists (100 each), fused, the top 10 read back (as ``Retriever._search_one``)."""
    from engine.library.retrieval import fuse_convex

    settings = engine.settings.retrieval  # type: ignore[attr-defined]
    async with engine.db.read() as s:  # type: ignore[attr-defined]
        backend.prepare_knn(s, 100, settings.ef_search)  # type: ignore[attr-defined]
        keyword = await backend.keyword(s, [1], text, 100)  # type: ignore[attr-defined]
        vec = await backend.knn(s, 1, 1, vector, 100, settings.ef_search)  # type: ignore[attr-defined]
        fused = fuse_convex(keyword, vec, keyword_weight=1.0, vector_weight=1.0)[:10]
        await engine.retrieval._hits(s, fused, None, None)  # type: ignore[attr-defined]


async def _server_ms(engine: object, text_: str, vector: object) -> float:
    """What the server spends executing the two index scans of a hybrid search (EXPLAIN
    ANALYZE's execution time: no client, network or scheduling time), best of REPEAT."""
    from sqlalchemy import text

    from engine.db import pg_textsearch
    from engine.db.fts_query import query_terms

    words = " ".join(query_terms(text_))
    settings = engine.settings.retrieval  # type: ignore[attr-defined]
    statements = [
        (f"SELECT c.id, c.chunk_set_id, bm25_get_current_score() FROM chunks c "
         f"ORDER BY c.text <@> to_bm25query(:q, '{pg_textsearch.INDEX}') LIMIT 160", {"q": words}),
        (f"SELECT chunk_id, (embedding::vector({DIM})) <=> :v AS d FROM chunk_embeddings "
         "WHERE collection_id = 1 AND generation = 1 ORDER BY d LIMIT 100", {"v": vector})]
    best = float("inf")
    for _ in range(REPEAT):
        total = 0.0
        async with engine.db.read() as s:  # type: ignore[attr-defined]
            await s.execute(text(f"SET LOCAL hnsw.ef_search = {settings.ef_search}"))
            for sql, params in statements:
                plan = await s.scalar(text(f"EXPLAIN (ANALYZE, FORMAT JSON) {sql}"), params)
                total += float((plan if isinstance(plan, list) else __import__("json").loads(
                    plan))[0]["Execution Time"])
        best = min(best, total)
    return best


async def _compare_exact(engine: object, backend: object, text: str, vector: object,
                         parts: dict[str, list[float]], recall: dict[str, list[float]]) -> None:
    """Time the same query with exact SQL BM25 as the keyword side, and the recall of the
    exact BM25 top 10 by the index's top 10."""
    from dataclasses import replace

    from engine.db import pg_bm25, pg_textsearch

    url = engine.db.engine.url  # type: ignore[attr-defined]
    key = pg_textsearch._key(url)
    saved = pg_textsearch._states[key]
    async with engine.db.read() as s:  # type: ignore[attr-defined]
        ms, exact = await timed(pg_bm25.bm25, s, [1], text, 100)
        parts["keyword_sql"].append(ms)
        index = await pg_textsearch.search(s, [1], text, 10)
    truth = {c for c, _ in exact[:10]}  # type: ignore[index]
    if truth:
        recall["bm25"].append(len(truth & {c for c, _ in index or []}) / len(truth))
    pg_textsearch._states[key] = replace(saved, method=pg_textsearch.METHOD_SQL)
    try:
        ms, _ = await timed(engine.retrieval.search, text, k=10)  # type: ignore[attr-defined]
        parts["full_sql"].append(ms)
        ms, _ = await timed(_hybrid_db, engine, backend, text, vector)
        parts["hybrid_db_sql"].append(ms)
    finally:
        pg_textsearch._states[key] = saved


async def _hnsw_recall(s: object, backend: object, vector: object,
                       hnsw: list[tuple[int, float]], recall: dict[str, list[float]]) -> None:
    """Recall@100 of the HNSW index against an exact scan (index scans turned off)."""
    from sqlalchemy import text

    await s.execute(text("SET LOCAL enable_indexscan = off"))  # type: ignore[attr-defined]
    truth = {c for c, _ in await backend.knn(s, 1, 1, vector, 100)}  # type: ignore[attr-defined]
    await s.execute(text("SET LOCAL enable_indexscan = on"))  # type: ignore[attr-defined]
    for ef in HNSW_EF:
        found = await backend.knn(s, 1, 1, vector, 100, ef)  # type: ignore[attr-defined]
        recall.setdefault(f"ef{ef}", []).append(len(truth & {c for c, _ in found}) / 100)


async def main(args: argparse.Namespace) -> None:
    # one home (and key) for the kept databases, so later runs can open them
    home = RESULTS / "latency-home"
    home.mkdir(parents=True, exist_ok=True)
    os.environ["PARLEY_HOME"] = str(home)
    sizes = [int(x) for x in args.sizes.split(",")]
    global EXACT, HNSW_RECALL, QUERIES, REPEAT
    HNSW_RECALL, EXACT = not args.no_hnsw_recall, not args.no_exact
    QUERIES, REPEAT = args.queries, max(args.repeat, 1)
    if REPEAT > 1:
        print(f"each timing is the best of {REPEAT} runs")
    print(f"{QUERIES} queries per size, {DIM}-d vectors, {os.cpu_count()} cores")
    async with postgres_url(args.db, args.pg, args.pg_bm25) as pg:
        for size in sizes:
            if pg:
                await measure(await _pg_database(pg, size), size)
            else:
                RESULTS.mkdir(parents=True, exist_ok=True)
                await measure(f"sqlite:///{RESULTS / f'latency-{size}.db'}", size)


async def _pg_database(url: str, size: int) -> str:
    """A database per size on the server of ``url`` (created when missing)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    name = f"parley_latency_{size}"
    conn = await asyncpg.connect(parsed.set(drivername="postgresql")
                                 .render_as_string(hide_password=False))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_database WHERE datname = $1", name):
            await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return parsed.set(database=name).render_as_string(hide_password=False)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000")
    parser.add_argument("--db", metavar="URL", help="a PostgreSQL server (databases per size)")
    parser.add_argument("--pg", action="store_true", help="start a throwaway PostgreSQL")
    parser.add_argument("--pg-bm25", action="store_true",
                        help="start a throwaway PostgreSQL with the pg_textsearch extension "
                        "(also times exact SQL BM25 and its recall)")
    parser.add_argument("--queries", type=int, default=QUERIES, help="queries per size")
    parser.add_argument("--repeat", type=int, default=1,
                        help="time each step N times and keep the best (for a loaded machine)")
    parser.add_argument("--no-exact", action="store_true",
                        help="with the BM25 index: skip timing exact SQL BM25 beside it")
    parser.add_argument("--no-hnsw-recall", action="store_true",
                        help="skip measuring HNSW recall against exact vector scans")
    asyncio.run(main(parser.parse_args()))
