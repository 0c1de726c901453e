"""Re-embedding a collection with the configured embedder, then swapping the vectors in.

The new vectors go to generation ``g+1`` with their own vector index (its dimension may
differ), while generation ``g`` keeps serving vector search and the chunks (and so keyword
search) are never touched. The collection records the pending embedder, so a rerun after a
crash or Ctrl-C resumes: only chunks without a ``g+1`` vector are embedded. When every
chunk has one, a single transaction points the collection at ``g+1`` and drops ``g``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import numpy as np
from sqlalchemy import ColumnElement, delete, func, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.errors import NotFound, ProviderError
from engine.ingest import store
from engine.ingest.pipeline import usage_record
from engine.teams import rls
from engine.types import ReindexProgress, ReindexResult

if TYPE_CHECKING:
    from engine.facade import Engine
    from engine.providers.embedders import Embedder

BATCH = 128  # chunks per embedding call and per write transaction


class Reembed:
    """One re-embedding of the collection named ``collection`` (see the module docstring)."""

    def __init__(self, engine: Engine, embedder: Embedder, collection: str, *,
                 force: bool = False) -> None:
        assert engine.db is not None
        self.engine, self.db, self.embedder = engine, engine.db, embedder
        self.name, self.force = collection, force
        self.user_id = engine.user_id
        self._usage: store.UsageRecord | None = None

    async def events(self) -> AsyncIterator[ReindexProgress | ReindexResult]:
        """Progress after each batch, then the ``ReindexResult``."""
        dimension = await self.embedder.probe()
        prepared = await self._begin(dimension)
        if isinstance(prepared, ReindexResult):
            yield prepared
            return
        cid, generation, previous = prepared
        embedded = 0
        while True:
            async with self.db.read() as s:
                total = await self._count(s, cid, None)
                done = await self._count(s, cid, generation)
            yield ReindexProgress(self.name, done, total)
            while True:
                batch = await self._missing(cid, generation)
                if not batch:
                    break
                vectors = await self._embed([text for _, text in batch])
                embedded += await self._store(cid, generation, [cid_ for cid_, _ in batch],
                                              vectors)
                done += len(batch)
                yield ReindexProgress(self.name, min(done, total), total)
            if await self._swap(cid, generation, dimension, previous):
                break  # else chunks arrived meanwhile: embed them too
        yield ReindexResult(self.name, self.embedder.name, dimension, generation, embedded,
                            previous)

    async def _begin(self, dimension: int) -> tuple[int, int, str] | ReindexResult:
        """Record the pending embedder and create the next generation's index."""
        async with self.db.write() as s:
            coll = await s.scalar(select(m.Collection).where(
                m.Collection.user_id == self.user_id, m.Collection.name == self.name))
            if coll is None:
                raise NotFound(f"no collection named '{self.name}'",
                               "see 'parley collections list'")
            same = (coll.embedder, coll.dimension) == (self.embedder.name, dimension)
            if same and coll.pending_embedder is None and not self.force:
                return ReindexResult(self.name, coll.embedder, coll.dimension,
                                     coll.vector_generation, 0, coll.embedder, "unchanged")
            generation = coll.vector_generation + 1
            pending = (coll.pending_embedder, coll.pending_dimension)
            if pending != (self.embedder.name, dimension):
                # A re-embed with another embedder was left unfinished: start over.
                await rls.vector_index(s, self.db.backend, coll.id, generation, None)
                await s.execute(delete(m.ChunkEmbedding).where(
                    m.ChunkEmbedding.collection_id == coll.id,
                    m.ChunkEmbedding.generation == generation))
                coll.pending_embedder, coll.pending_dimension = self.embedder.name, dimension
            await rls.vector_index(s, self.db.backend, coll.id, generation, dimension)
            return coll.id, generation, coll.embedder

    async def _count(self, s: AsyncSession, cid: int, generation: int | None) -> int:
        if generation is None:
            stmt = select(func.count()).select_from(m.Chunk).where(
                _in_collection(cid), m.Chunk.user_id == self.user_id)
        else:
            stmt = select(func.count()).select_from(m.ChunkEmbedding).where(
                m.ChunkEmbedding.collection_id == cid, m.ChunkEmbedding.generation == generation)
        return int(await s.scalar(stmt) or 0)

    async def _missing(self, cid: int, generation: int) -> list[tuple[int, str]]:
        has_vector = select(m.ChunkEmbedding.chunk_id).where(
            m.ChunkEmbedding.chunk_id == m.Chunk.id, m.ChunkEmbedding.collection_id == cid,
            m.ChunkEmbedding.generation == generation)
        async with self.db.read() as s:
            rows = await s.execute(
                select(m.Chunk.id, m.Chunk.text)
                .where(_in_collection(cid), m.Chunk.user_id == self.user_id,
                       ~has_vector.exists())
                .order_by(m.Chunk.id).limit(BATCH))
            return [(int(i), t) for i, t in rows]

    async def _embed(self, texts: list[str]) -> np.ndarray:
        started = time.perf_counter()
        result = await self.embedder.embed(texts)
        vectors = np.asarray(result.vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[0] != len(texts):
            raise ProviderError(f"the embedder returned vectors of shape {vectors.shape} for "
                                f"{len(texts)} texts")
        self._usage = usage_record(self.engine, result.prompt_tokens, result.estimated,
                                   (time.perf_counter() - started) * 1000)
        return vectors

    async def _store(self, cid: int, generation: int, chunk_ids: list[int],
                     vectors: np.ndarray) -> int:
        try:
            async with self.db.write() as s:
                # Chunks removed since they were read (a document deleted meanwhile) are
                # left out rather than failing the foreign key.
                alive = set((await s.execute(select(m.Chunk.id).where(
                    m.Chunk.id.in_(chunk_ids)))).scalars())
                rows = [{"chunk_id": c, "generation": generation, "collection_id": cid,
                         "embedding": v} for c, v in zip(chunk_ids, vectors, strict=True)
                        if c in alive]
                if rows:
                    await s.execute(insert(m.ChunkEmbedding), rows)
                if self._usage is not None:
                    await store.add_usage(s, self.user_id, [self._usage])
                return len(rows)
        except IntegrityError:
            return 0  # a concurrent delete won the race; the next query skips that chunk

    async def _swap(self, cid: int, generation: int, dimension: int, previous: str) -> bool:
        """Point the collection at ``generation`` if every chunk has its vector."""
        async with self.db.write() as s:
            if await self._count(s, cid, None) > await self._count(s, cid, generation):
                return False
            coll = await s.get(m.Collection, cid)
            assert coll is not None
            old = coll.vector_generation
            for gen in range(1, generation):
                await rls.vector_index(s, self.db.backend, cid, gen, None)
            await s.execute(delete(m.ChunkEmbedding).where(
                m.ChunkEmbedding.collection_id == cid, m.ChunkEmbedding.generation < generation))
            coll.embedder, coll.dimension, coll.vector_generation = \
                self.embedder.name, dimension, generation
            coll.pending_embedder = coll.pending_dimension = None
            await store.audit(s, self.user_id, self.engine.settings.user, "collection.reembed",
                              self.name, {"from": previous, "to": self.embedder.name,
                                          "generation": generation, "previous_generation": old})
        return True


def _in_collection(collection_id: int) -> ColumnElement[bool]:
    """The chunks of a collection: those of the chunk sets its documents point at (a set
    shared with another collection is re-embedded for this one only)."""
    return m.Chunk.chunk_set_id.in_(select(m.Document.chunk_set_id).where(
        m.Document.collection_id == collection_id))
