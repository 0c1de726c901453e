"""Hybrid search: BM25 keyword ranking and vector KNN, fused into one ranking.

A search resolves the user's collections (and those shared with them: ``engine.teams``),
takes ``retrieval.candidates`` hits from each ranking (keyword over all scoped collections
at once; vectors per collection, merged by distance) and fuses them (``retrieval.fusion``):

- ``convex`` (default): each ranking's scores (BM25; cosine similarity) are scaled to 0..1
  over its own candidates, and a chunk scores ``keyword_weight * kw + vector_weight * vec``
  divided by the sum of the weights (a chunk missing from one list gets 0 there);
- ``rrf``: ``keyword_weight / (rrf_k + keyword_rank) + vector_weight / (rrf_k + vector_rank)``.

Convex fusion uses how much better one hit is than the next, which rank fusion throws
away: on the SciFact train split it beat the best-tuned rank fusion by 0.8 points of
nDCG@10 (``bench/scifact.py --tune``). Scaling per query keeps it independent of the
backend's BM25 variant and of the embedder's similarity range.

Any string is a safe query (``engine/db/fts_query.py``). A collection whose vectors were
made by another embedder than the configured one is an error naming ``parley reindex
--embed``; a collection with no vectors yet is searched by keywords alone.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import func, select, text

from engine.db import models as m
from engine.db.reconnect import retry_read
from engine.db.search_backend import for_backend
from engine.db.search_filter import DocFilter, doc_conditions, placeholders
from engine.errors import EmbedderMismatch
from engine.ingest.store import reembed_hint
from engine.teams import shares
from engine.types import SearchHit

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncSession

    from engine.facade import Engine


@dataclass(frozen=True, slots=True)
class _Scope:
    """The collections a search covers, and which of them have live vectors."""

    ids: tuple[int, ...]
    vectors: tuple[tuple[int, int, int], ...]  # (collection id, generation, vector count)


def _order(scores: dict[int, float], best: dict[int, int]) -> list[tuple[int, float]]:
    # ties go to the better single rank, then the smaller id, so results are stable
    return sorted(scores.items(), key=lambda item: (-item[1], best[item[0]], item[0]))


def _best_ranks(*rankings: Sequence[int]) -> dict[int, int]:
    best: dict[int, int] = {}
    for ranking in rankings:
        for rank, cid in enumerate(ranking, start=1):
            best[cid] = min(best.get(cid, rank), rank)
    return best


def fuse(keyword: Sequence[int], vector: Sequence[int], *, rrf_k: float,
         keyword_weight: float, vector_weight: float) -> list[tuple[int, float]]:
    """Weighted reciprocal rank fusion of two rankings (ids, best first): (id, score), best
    first."""
    scores: dict[int, float] = {}
    for ranking, weight in ((keyword, keyword_weight), (vector, vector_weight)):
        for rank, cid in enumerate(ranking, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (rrf_k + rank)
    return _order(scores, _best_ranks(keyword, vector))


def _unit_scale(scores: Sequence[tuple[int, float]]) -> dict[int, float]:
    """Scores mapped onto 0..1 (best 1); all equal (or one hit) map to 1."""
    if not scores:
        return {}
    low, high = min(v for _, v in scores), max(v for _, v in scores)
    span = high - low
    return {cid: (v - low) / span if span > 0 else 1.0 for cid, v in scores}


def fuse_convex(keyword: Sequence[tuple[int, float]], vector: Sequence[tuple[int, float]], *,
                keyword_weight: float, vector_weight: float) -> list[tuple[int, float]]:
    """Convex combination of the two rankings' scores, each scaled to 0..1 over its list.

    ``keyword`` holds (id, score) with higher better; ``vector`` (id, cosine distance).
    Scores of the result lie in 0..1; (id, score), best first."""
    total = keyword_weight + vector_weight
    if total <= 0:
        keyword_weight = vector_weight = total = 1.0
    kw = _unit_scale(keyword)
    vec = _unit_scale([(cid, -distance) for cid, distance in vector])
    scores = {cid: (keyword_weight * kw.get(cid, 0.0) + vector_weight * vec.get(cid, 0.0))
              / total for cid in kw.keys() | vec.keys()}
    return _order(scores, _best_ranks([c for c, _ in keyword], [c for c, _ in vector]))


def _tuple(value: str | Sequence[str] | None) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,) if value else ()
    return tuple(v for v in value if v)


class Retriever:
    """Hybrid search over the user's collections (``engine.retrieval``)."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._owners: dict[int, tuple[str | None, str]] = {}  # collection id: (owner, label)

    @retry_read
    async def search(self, query: str, *, k: int | None = None,
                     collections: Sequence[str] | None = None,
                     tags: Sequence[str] | None = None,
                     path_glob: str | Sequence[str] | None = None,
                     kinds: Sequence[str] | None = None,
                     explain: bool = False,
                     keyword_only: Sequence[str] = ()) -> list[SearchHit]:
        """The best ``k`` chunks for ``query`` (default ``retrieval.top_k``), best first.

        ``collections`` are names (default: all of the user's); ``tags``, ``path_glob``
        (SQLite GLOB syntax; a relative pattern matches the end of a path) and ``kinds``
        (document kinds such as ``markdown`` or ``pdf``) keep only documents that match one
        of the given values. ``explain`` fills each hit's keyword and vector rank (None
        where that ranking did not return the chunk). Raises ``NotFound`` for an unknown
        collection and ``EmbedderMismatch`` for vectors made by another embedder, except in
        the ``keyword_only`` collections, which are searched by keywords alone (chats do
        that rather than fail)."""
        found = await self.search_many([query], k=k, collections=collections, tags=tags,
                                       path_glob=path_glob, kinds=kinds, explain=explain,
                                       keyword_only=keyword_only)
        return found[0]

    @retry_read
    async def search_many(self, queries: Sequence[str], *, k: int | None = None,
                          collections: Sequence[str] | None = None,
                          tags: Sequence[str] | None = None,
                          path_glob: str | Sequence[str] | None = None,
                          kinds: Sequence[str] | None = None,
                          explain: bool = False,
                          keyword_only: Sequence[str] = ()) -> list[list[SearchHit]]:
        """``search`` for each query, in order, resolving collections and checking the
        embedder once (batch mode of ``parley search --queries``)."""
        settings = self._engine.settings.retrieval
        k = int(k or settings.top_k)
        flt = DocFilter(_tuple(tags), _tuple(path_glob), _tuple(kinds))
        # One read transaction for the scope and every query: on PostgreSQL each statement
        # is a round trip to the server, and under load each costs more than the scans.
        async with self._engine._require_db().read() as s:
            scope = await self._scope(s, _tuple(collections), frozenset(keyword_only))
            results: list[list[SearchHit]] = []
            for query in queries:
                results.append(await self._search_one(s, query, k, scope, flt, explain))
        return results

    # -- internals ------------------------------------------------------------------------------
    async def _scope(self, s: AsyncSession, names: tuple[str, ...],
                     keyword_only: frozenset[str] = frozenset()) -> _Scope:
        db = self._engine._require_db()
        uid = self._engine.user_id
        # the user's own collections and those shared with them (``owner/name``)
        # with whether each has vectors of its live generation: one statement in all
        found = await (shares.resolve(s, uid, names, vectors=True) if names
                       else shares.visible(s, uid, vectors=True))
        rows = sorted((v.row for v in found), key=lambda c: c.id)
        self._owners.update({v.row.id: (v.owner, v.label) for v in found})
        live = {v.row.id for v in found if v.has_vectors}
        vectors = []
        for coll in rows:
            if coll.id not in live or coll.name in keyword_only:
                continue  # nothing embedded yet (or another embedder's): keywords only
            self._check_embedder(coll)
            size = 0
            if db.backend == "sqlite":  # the size decides quantised KNN, which only SQLite has
                # the documents' chunk counts: a cheap size estimate (counting vectors is not)
                size = await s.scalar(select(func.coalesce(func.sum(m.Document.chunk_count), 0))
                                      .where(m.Document.collection_id == coll.id))
            vectors.append((coll.id, coll.vector_generation, int(size or 0)))
        return _Scope(tuple(c.id for c in rows), tuple(vectors))

    def _check_embedder(self, coll: m.Collection) -> None:
        embedder = self._engine.embedder()
        if coll.embedder != embedder.name:
            raise EmbedderMismatch(
                f"collection '{coll.name}' was indexed with {coll.embedder}, but the configured "
                f"embedder is {embedder.name}",
                f"{reembed_hint(coll.name)}, or configure the embedder it was indexed with")

    async def _search_one(self, s: AsyncSession, query: str, k: int, scope: _Scope,
                          flt: DocFilter, explain: bool) -> list[SearchHit]:
        settings = self._engine.settings.retrieval
        backend = for_backend(self._engine._require_db().backend)
        pool = max(settings.candidates, k)
        embedding: asyncio.Task[np.ndarray] | None = None
        if scope.vectors and query.strip():
            # the model runs in a thread while the keyword search runs in the database
            embedding = asyncio.create_task(self._engine.embedder().embed_query(query))
            backend.prepare_knn(s, pool, settings.ef_search)
        try:
            keyword = await backend.keyword(s, scope.ids, query, pool, flt=flt)
        finally:
            vector_q = await embedding if embedding is not None else None
        vector: list[tuple[int, float]] = []
        if vector_q is not None:
            for cid, generation, count in scope.vectors:
                vector += await backend.knn(
                    s, cid, generation, vector_q, pool, settings.ef_search, flt=flt,
                    quantized=0 < settings.quantize_above < count)
            vector.sort(key=lambda hit: (hit[1], hit[0]))
        vector = vector[:pool]
        kw_ids = [cid for cid, _ in keyword]
        vec_ids = [cid for cid, _ in vector]
        if settings.fusion == "rrf":
            fused = fuse(kw_ids, vec_ids, rrf_k=settings.rrf_k,
                         keyword_weight=settings.keyword_weight,
                         vector_weight=settings.vector_weight)
        else:
            fused = fuse_convex(keyword, vector, keyword_weight=settings.keyword_weight,
                                vector_weight=settings.vector_weight)
        fused = fused[:k]
        return await self._hits(s, fused, kw_ids if explain else None,
                                vec_ids if explain else None, scope.ids, flt)

    async def _hits(self, s: AsyncSession, fused: list[tuple[int, float]],
                    keyword: list[int] | None, vector: list[int] | None,
                    scope: Sequence[int], flt: DocFilter) -> list[SearchHit]:
        if not fused:
            return []
        chunk_ids = [cid for cid, _ in fused]
        # No user filter: a shared collection's chunks are its owner's; the scope (and on
        # PostgreSQL row-level security) decides what is visible.
        chunks = {c.id: c for c in await s.scalars(select(m.Chunk).where(
            m.Chunk.id.in_(chunk_ids)))}
        # A chunk set is shared by identical copies: a hit names the copy in the searched
        # collections (the first collection, then the first path) that passes the filter.
        backend = self._engine._require_db().backend
        cond, params = doc_conditions(flt, backend) if flt else ("", {})
        ids, id_params = placeholders("h", sorted({c.chunk_set_id for c in chunks.values()}))
        cids, cid_params = placeholders("hc", scope)
        rows = (await s.execute(text(
            "SELECT d.chunk_set_id, d.id, d.source_path, co.id, co.name FROM documents d "
            "JOIN collections co ON co.id = d.collection_id "
            f"WHERE d.chunk_set_id IN ({ids}) AND d.collection_id IN ({cids})"
            + (f" AND {cond}" if cond else "") + " ORDER BY co.id, d.source_path"),
            {**params, **id_params, **cid_params})).all() if chunks else []
        holder: dict[int, tuple[int, str, int, str]] = {}
        for set_id, doc_id, path, collection_id, name in rows:
            holder.setdefault(set_id, (doc_id, path, collection_id, name))
        kw_rank = {cid: i for i, cid in enumerate(keyword or (), start=1)}
        vec_rank = {cid: i for i, cid in enumerate(vector or (), start=1)}
        hits = []
        for chunk_id, score in fused:
            chunk = chunks.get(chunk_id)
            if chunk is None or chunk.chunk_set_id not in holder:
                continue  # deleted between ranking and reading: never a dangling hit
            doc_id, path, collection_id, name = holder[chunk.chunk_set_id]
            hits.append(SearchHit(
                rank=len(hits) + 1, score=score, path=path, document_id=doc_id,
                chunk_id=chunk.id, page=chunk.page, line_start=chunk.line_start,
                line_end=chunk.line_end, heading=chunk.heading_path, text=chunk.text,
                keyword_rank=kw_rank.get(chunk_id), vector_rank=vec_rank.get(chunk_id),
                collection=self._owners.get(collection_id, (None, name))[1],
                owner=self._owners.get(collection_id, (None, name))[0]))
        return hits
