"""The ingestion pipeline's database writes, each meant to run in one short transaction.

A document's old chunks, its new chunks, their vectors and its content hash are written in
one transaction: a crash before the commit leaves the previous state, so a rerun simply
redoes the file; a crash after it leaves a document the rerun skips. Nothing here commits:
callers wrap these in ``db.write()``.

Vectors and keyword rows follow the chunk rows: deleting ``chunk_embeddings`` rows updates
the SQLite vec0 tables through their triggers (and the PostgreSQL HNSW indexes directly),
and deleting or inserting ``chunks`` rows updates the FTS5 table (SQLite) or the generated
``tsv`` column (PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.db.coltypes import utcnow
from engine.errors import EmbedderMismatch
from engine.ingest.prepare import Known, Prepared

_ID_BATCH = 500  # ids per IN list: well under SQLite's and asyncpg's parameter limits


@dataclass(frozen=True, slots=True)
class Target:
    """Where a run writes: the collection, its live vector generation and its embedder."""

    user_id: int
    collection_id: int
    collection: str
    generation: int
    embedder: str
    tags: tuple[str, ...] = ()
    actor_id: int | None = None  # who runs the ingest, when not the collection's owner

    @property
    def actor(self) -> int:
        """The user the run and its usage belong to."""
        return self.user_id if self.actor_id is None else self.actor_id


@dataclass(frozen=True, slots=True)
class UsageRecord:
    """One embedding call, for the ``token_usage`` table."""

    provider: str
    model: str
    tokens: int
    estimated: bool
    cost: float
    latency_ms: float


def _size(size: int) -> int:
    # The column is a 32-bit integer on PostgreSQL; an oversized file is still recorded.
    return min(size, 2**31 - 1)


def reembed_hint(collection: str) -> str:
    return f"run 'parley reindex --embed --collection {collection}' to re-embed it"


async def known_documents(s: AsyncSession, user_id: int, collection_id: int) -> dict[str, Known]:
    """source path -> what the index holds, for every document of the collection."""
    rows = await s.execute(
        select(m.Document.source_path, m.Document.id, m.Document.content_hash,
               m.Document.status)
        .where(m.Document.user_id == user_id, m.Document.collection_id == collection_id))
    return {path: Known(doc_id, content_hash, status)
            for path, doc_id, content_hash, status in rows}


async def check_target(s: AsyncSession, t: Target) -> None:
    """Refuse to write when the collection was re-embedded (or removed) since the run began."""
    row = (await s.execute(
        select(m.Collection.embedder, m.Collection.vector_generation)
        .where(m.Collection.id == t.collection_id, m.Collection.user_id == t.user_id))).first()
    if row is None:
        raise EmbedderMismatch(f"collection '{t.collection}' was removed during the ingestion",
                               "run the ingestion again to recreate it")
    if (row.embedder, row.vector_generation) != (t.embedder, t.generation):
        raise EmbedderMismatch(
            f"collection '{t.collection}' was re-embedded with {row.embedder} during the "
            f"ingestion (this run embeds with {t.embedder})",
            "run the ingestion again; files already indexed are skipped")


async def _document_row(s: AsyncSession, t: Target, item: Prepared) -> m.Document:
    doc = await s.scalar(select(m.Document).where(
        m.Document.user_id == t.user_id, m.Document.collection_id == t.collection_id,
        m.Document.path_hash == item.path_hash))
    if doc is None:
        doc = m.Document(user_id=t.user_id, collection_id=t.collection_id,
                         source_path=item.path, path_hash=item.path_hash)
        s.add(doc)
        await s.flush()
    return doc


async def _delete_chunks_of(s: AsyncSession, doc_ids: Sequence[int]) -> None:
    chunk_ids = select(m.Chunk.id).where(m.Chunk.document_id.in_(doc_ids)).scalar_subquery()
    await s.execute(delete(m.ChunkEmbedding).where(m.ChunkEmbedding.chunk_id.in_(chunk_ids)))
    await s.execute(delete(m.Chunk).where(m.Chunk.document_id.in_(doc_ids)))


async def write_indexed(s: AsyncSession, t: Target, item: Prepared,
                        vectors: np.ndarray) -> int:
    """Replace the document's chunks and vectors with ``item``'s; returns the document id."""
    assert item.doc is not None and len(item.chunks) == len(vectors)
    doc = await _document_row(s, t, item)
    await _delete_chunks_of(s, [doc.id])
    rows = [{
        "user_id": t.user_id, "document_id": doc.id, "collection_id": t.collection_id,
        "chunk_index": c.index, "text": c.text, "content_hash": c.content_hash,
        "page": c.page, "heading_path": c.heading_path, "line_start": c.line_start,
        "line_end": c.line_end, "char_start": c.char_start, "char_end": c.char_end,
        "token_count": c.token_count,
    } for c in item.chunks]
    ids = (await s.execute(insert(m.Chunk).returning(m.Chunk.id, sort_by_parameter_order=True),
                           rows)).scalars().all()
    await s.execute(insert(m.ChunkEmbedding), [
        {"chunk_id": cid, "generation": t.generation, "collection_id": t.collection_id,
         "embedding": vec} for cid, vec in zip(ids, vectors, strict=True)])
    doc.content_hash = item.content_hash
    doc.kind, doc.mime, doc.title = item.doc.kind, item.doc.mime, item.doc.title
    doc.size, doc.mtime = _size(item.size), item.mtime
    doc.status, doc.error = "indexed", None
    doc.chunk_count = len(ids)
    doc.token_count = sum(c.token_count for c in item.chunks)
    doc.indexed_at = utcnow()
    await add_tags(s, doc.id, t.tags)
    return doc.id


async def write_failed(s: AsyncSession, t: Target, item: Prepared) -> None:
    """Record why a file failed. Chunks of an earlier good version stay searchable: a file
    that is briefly unreadable (locked, half-written) must not lose its index."""
    doc = await _document_row(s, t, item)
    doc.status, doc.error = "error", item.error
    doc.size, doc.mtime = _size(item.size), item.mtime
    await add_tags(s, doc.id, t.tags)


async def add_tags(s: AsyncSession, doc_id: int, tags: Sequence[str]) -> None:
    """Add the tags the document does not have yet (tags are never removed here)."""
    if not tags:
        return
    have = set((await s.execute(select(m.DocumentTag.tag)
                                .where(m.DocumentTag.document_id == doc_id))).scalars())
    missing = [tag for tag in dict.fromkeys(tags) if tag not in have]
    if missing:
        await s.execute(insert(m.DocumentTag),
                        [{"document_id": doc_id, "tag": tag} for tag in missing])


async def delete_documents(s: AsyncSession, user_id: int, doc_ids: Sequence[int]) -> int:
    """Delete documents with their chunks, vectors (every generation) and keyword rows.

    Returns the number of chunks removed.
    """
    removed = 0
    for first in range(0, len(doc_ids), _ID_BATCH):
        batch = list(doc_ids[first:first + _ID_BATCH])
        owned = list((await s.execute(select(m.Document.id).where(
            m.Document.id.in_(batch), m.Document.user_id == user_id))).scalars())
        if not owned:
            continue
        removed += await s.scalar(select(func.count()).select_from(m.Chunk)
                                  .where(m.Chunk.document_id.in_(owned))) or 0
        await _delete_chunks_of(s, owned)
        await s.execute(delete(m.DocumentTag).where(m.DocumentTag.document_id.in_(owned)))
        await s.execute(delete(m.Document).where(m.Document.id.in_(owned)))
    return removed


async def add_usage(s: AsyncSession, user_id: int, records: Sequence[UsageRecord]) -> None:
    """One ``token_usage`` row per embedding call."""
    if records:
        await s.execute(insert(m.TokenUsage), [{
            "user_id": user_id, "kind": "embedding", "provider": r.provider, "model": r.model,
            "embedding_tokens": r.tokens, "estimated": r.estimated, "cost": r.cost,
            "latency_ms": r.latency_ms} for r in records])


async def audit(s: AsyncSession, user_id: int, actor: str, action: str, target: str,
                detail: dict[str, object]) -> None:
    """A row in the audit log (deletes and re-embeds are audited)."""
    s.add(m.AuditLog(user_id=user_id, actor=actor, action=action, target=target,
                     detail=detail))

