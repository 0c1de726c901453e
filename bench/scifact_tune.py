"""Grid search of the fusion on SciFact train; the winners are then scored on test.

Both rankings are computed once per query through the backend's own ``keyword`` and
``knn`` (the same calls ``engine.retrieval`` makes), then fused offline for every setting:
weighted reciprocal rank fusion over (rrf_k, keyword weight, candidates), and the convex
combination of min-max scaled scores over (keyword share alpha, candidates). Run through
``python bench/scifact.py --tune [--pg]``.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import select

from engine.db import models as m
from engine.db.search_backend import for_backend
from engine.library.retrieval import fuse, fuse_convex

Lists = dict[str, tuple[list[tuple[int, float]], list[tuple[int, float]]]]
POOL = 200


async def candidate_lists(engine: Any, queries: dict[str, str]) -> Lists:
    """(keyword hits, vector hits) per query, ``POOL`` deep."""
    backend = for_backend(engine.db.backend)
    settings = engine.settings.retrieval
    async with engine.db.read() as s:
        coll = (await s.scalars(select(m.Collection))).one()
    vectors = await engine.embedder().embed_documents(list(queries.values()))
    lists: Lists = {}
    for (qid, query), vector in zip(queries.items(), vectors, strict=True):
        async with engine.db.read() as s:
            kw = await backend.keyword(s, [coll.id], query, POOL)
            vec = await backend.knn(s, coll.id, coll.vector_generation, vector, POOL,
                                    settings.ef_search)
        lists[qid] = (kw, vec)
    return lists


def evaluate(lists: Lists, qrels: dict[str, dict[str, int]], doc_of: dict[int, str],
             ranker: Callable[[list[tuple[int, float]], list[tuple[int, float]]], list[int]]
             ) -> tuple[float, float]:
    from bench.scifact import evaluate as metrics

    runs = {}
    for qid, (kw, vec) in lists.items():
        seen: dict[str, None] = {}
        for cid in ranker(kw, vec):
            seen.setdefault(doc_of[cid], None)
        runs[qid] = list(seen)
    return metrics(runs, qrels)


def rrf(k: float, kw_weight: float, pool: int) -> Callable[..., list[int]]:
    def rank(kw: list[tuple[int, float]], vec: list[tuple[int, float]]) -> list[int]:
        fused = fuse([c for c, _ in kw[:pool]], [c for c, _ in vec[:pool]], rrf_k=k,
                     keyword_weight=kw_weight, vector_weight=1.0)
        return [c for c, _ in fused]
    return rank


def convex(alpha: float, pool: int) -> Callable[..., list[int]]:
    def rank(kw: list[tuple[int, float]], vec: list[tuple[int, float]]) -> list[int]:
        fused = fuse_convex(kw[:pool], vec[:pool], keyword_weight=alpha,
                            vector_weight=1.0 - alpha)
        return [c for c, _ in fused]
    return rank


async def tune(engine: Any, train: tuple[dict, dict], test: tuple[dict, dict]) -> None:
    async with engine.db.read() as s:
        doc_of = {cid: Path(path).stem for cid, path in (await s.execute(
            select(m.Chunk.id, m.Document.source_path).join(
                m.Document, m.Document.chunk_set_id == m.Chunk.chunk_set_id))).all()}
    train_lists = await candidate_lists(engine, train[0])
    test_lists = await candidate_lists(engine, test[0])

    def both(name: str, ranker: Callable[..., list[int]]) -> tuple[str, float, float, float]:
        tr = evaluate(train_lists, train[1], doc_of, ranker)
        te = evaluate(test_lists, test[1], doc_of, ranker)
        return name, tr[0], te[0], te[1]

    rows = [both("keyword only", lambda kw, vec: [c for c, _ in kw]),
            both("vector only", lambda kw, vec: [c for c, _ in vec])]
    grid = []
    for k, w, pool in itertools.product((1, 5, 10, 20, 30, 45, 60, 90, 120),
                                        (0.5, 0.7, 0.8, 0.9, 1.0, 1.1, 1.25, 1.5, 2.0),
                                        (50, 100, 200)):
        grid.append(both(f"rrf k={k} kw={w} pool={pool}", rrf(k, w, pool)))
    for alpha, pool in itertools.product([i / 20 for i in range(21)], (100, 200)):
        grid.append(both(f"convex alpha={alpha:.2f} pool={pool}", convex(alpha, pool)))
    grid.sort(key=lambda row: -row[1])
    print(f"{'setting':36} {'train nDCG@10':>14} {'test nDCG@10':>13} {'test R@100':>11}")
    for name, tr, te, rec in rows + grid[:15]:
        print(f"{name:36} {tr:14.4f} {te:13.4f} {rec:11.4f}")
    for name, ranker in (("rrf k=60 kw=1.0 pool=100 (untuned)", rrf(60, 1.0, 100)),
                         ("convex alpha=0.50 pool=100 (default)", convex(0.5, 100))):
        row = both(name, ranker)
        print(f"{row[0]:36} {row[1]:14.4f} {row[2]:13.4f} {row[3]:11.4f}")
