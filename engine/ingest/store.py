"""The ingestion pipeline's database writes, each meant to run in one short transaction.

Chunks belong to chunk sets: identical content (same bytes, same file type) of one owner
is chunked and embedded once, and every document holding it points at the same set; sets
never cross owners (two users' copies of a file are two sets). A document's new chunk set,
its vectors, its content hash and the release of its previous set are written in one
transaction: a crash before the commit leaves the previous state, so a rerun simply redoes
the file; a crash after it leaves a document the rerun skips. Nothing here commits: callers
wrap these in ``db.write()``.

Vectors and keyword rows follow the chunk rows: deleting ``chunk_embeddings`` rows updates
the SQLite vec0 tables through their triggers (and the PostgreSQL HNSW indexes directly),
and deleting or inserting ``chunks`` rows updates the FTS5 table (SQLite) or the generated
``tsv`` column (PostgreSQL).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sqlalchemy import delete, func, insert, literal, select
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


async def _drop_set(s: AsyncSession, set_id: int) -> int:
    """Delete a chunk set with its chunks, vectors and keyword rows; returns the chunks."""
    removed = await s.scalar(select(func.count()).select_from(m.Chunk)
                             .where(m.Chunk.chunk_set_id == set_id)) or 0
    chunk_ids = select(m.Chunk.id).where(m.Chunk.chunk_set_id == set_id)
    await s.execute(delete(m.ChunkEmbedding).where(
        m.ChunkEmbedding.chunk_id.in_(chunk_ids.scalar_subquery())))
    await s.execute(delete(m.Chunk).where(m.Chunk.chunk_set_id == set_id))
    await s.execute(delete(m.ChunkSet).where(m.ChunkSet.id == set_id))
    return removed


async def _release(s: AsyncSession, pairs: Sequence[tuple[int, int | None]],
                   actor: int) -> int:
    """After documents stopped pointing at chunk sets: drop the vectors of a (collection,
    chunk set) no document of that collection holds any more, and the chunk sets no
    document holds at all (their chunks and keyword rows with them). Returns the number
    of chunks deleted.

    Only a set's owner sees every document holding it (on PostgreSQL a member writing into
    a shared collection cannot see the owner's other collections): when ``actor`` is not
    the owner, the set and its chunks stay, and ``collect_orphans`` run by the owner
    removes them once no document holds them."""
    removed = 0
    for collection_id, set_id in dict.fromkeys(pairs):
        if set_id is None:
            continue
        holders = (await s.execute(select(m.Document.collection_id).where(
            m.Document.chunk_set_id == set_id))).scalars().all()
        owner = await s.scalar(select(m.ChunkSet.user_id).where(m.ChunkSet.id == set_id))
        if not holders and owner == actor:
            removed += await _drop_set(s, set_id)
        elif collection_id not in holders:
            chunk_ids = select(m.Chunk.id).where(m.Chunk.chunk_set_id == set_id)
            await s.execute(delete(m.ChunkEmbedding).where(
                m.ChunkEmbedding.collection_id == collection_id,
                m.ChunkEmbedding.chunk_id.in_(chunk_ids.scalar_subquery())))
    return removed


def _describe(doc: m.Document, item: Prepared) -> None:
    doc.size, doc.mtime = _size(item.size), item.mtime
    doc.status, doc.error = "indexed", None
    doc.content_hash = item.content_hash
    doc.indexed_at = utcnow()


async def write_indexed(s: AsyncSession, t: Target, item: Prepared,
                        vectors: np.ndarray) -> int:
    """Point the document at a new chunk set holding ``item``'s chunks and vectors (its
    previous chunk set is released); returns the chunk set id."""
    assert item.doc is not None and len(item.chunks) == len(vectors)
    doc = await _document_row(s, t, item)
    chunk_set = m.ChunkSet(user_id=t.user_id, created_by=t.actor,
                           content_hash=item.content_hash or "",
                           suffix=suffix_of(item.path), chunk_count=len(item.chunks),
                           token_count=sum(c.token_count for c in item.chunks))
    s.add(chunk_set)
    await s.flush()
    rows = [{
        "user_id": t.user_id, "chunk_set_id": chunk_set.id,
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
    previous = doc.chunk_set_id
    doc.chunk_set_id = chunk_set.id
    doc.kind, doc.mime, doc.title = item.doc.kind, item.doc.mime, item.doc.title
    doc.chunk_count, doc.token_count = chunk_set.chunk_count, chunk_set.token_count
    _describe(doc, item)
    await s.flush()
    await _release(s, [(t.collection_id, previous)], t.actor)
    await add_tags(s, doc.id, t.tags)
    return chunk_set.id


async def shareable_sets(s: AsyncSession, user_id: int,
                         embedder: str) -> dict[tuple[str, str], int]:
    """(content hash, file suffix) -> a chunk set of the user whose vectors were made by
    ``embedder`` (in the live generation of some collection): a file with that content
    can point at it instead of being chunked and embedded again."""
    first = (select(m.Chunk.id).join(m.ChunkEmbedding, m.ChunkEmbedding.chunk_id == m.Chunk.id)
             .join(m.Collection, (m.Collection.id == m.ChunkEmbedding.collection_id)
                   & (m.Collection.vector_generation == m.ChunkEmbedding.generation))
             .where(m.Chunk.chunk_set_id == m.ChunkSet.id, m.Chunk.chunk_index == 0,
                    m.Collection.embedder == embedder))
    rows = await s.execute(select(m.ChunkSet.content_hash, m.ChunkSet.suffix, m.ChunkSet.id)
                           .where(m.ChunkSet.user_id == user_id, first.exists())
                           .order_by(m.ChunkSet.id))
    return {(h, suffix): set_id for h, suffix, set_id in rows}


async def write_linked(s: AsyncSession, t: Target, item: Prepared, set_id: int) -> int | None:
    """Point the document at an existing chunk set with the same content: no chunking, no
    embedding (vectors are copied when the set is new to this collection). Returns the
    document id, or None when the set is gone or has no vectors from this embedder."""
    chunk_set = await s.get(m.ChunkSet, set_id)
    if chunk_set is None or chunk_set.user_id != t.user_id:
        return None
    sibling = await s.scalar(select(m.Document).where(m.Document.chunk_set_id == set_id)
                             .order_by(m.Document.id).limit(1))
    set_chunks = select(m.Chunk.id).where(m.Chunk.chunk_set_id == set_id).scalar_subquery()
    have = await s.scalar(select(func.count()).select_from(m.ChunkEmbedding).where(
        m.ChunkEmbedding.collection_id == t.collection_id,
        m.ChunkEmbedding.generation == t.generation, m.ChunkEmbedding.chunk_id.in_(set_chunks)))
    if not have:
        source = (await s.execute(
            select(m.ChunkEmbedding.collection_id, m.ChunkEmbedding.generation)
            .join(m.Collection, (m.Collection.id == m.ChunkEmbedding.collection_id)
                  & (m.Collection.vector_generation == m.ChunkEmbedding.generation))
            .where(m.ChunkEmbedding.chunk_id.in_(set_chunks), m.Collection.embedder == t.embedder)
            .limit(1))).first()
        if source is None:
            return None
        complete = await s.scalar(select(func.count()).select_from(m.ChunkEmbedding).where(
            m.ChunkEmbedding.collection_id == source[0],
            m.ChunkEmbedding.generation == source[1],
            m.ChunkEmbedding.chunk_id.in_(set_chunks)))
        if complete != chunk_set.chunk_count:
            return None
        await s.execute(insert(m.ChunkEmbedding).from_select(
            ["chunk_id", "generation", "collection_id", "embedding"],
            select(m.ChunkEmbedding.chunk_id, literal(t.generation), literal(t.collection_id),
                   m.ChunkEmbedding.embedding)
            .where(m.ChunkEmbedding.collection_id == source[0],
                   m.ChunkEmbedding.generation == source[1],
                   m.ChunkEmbedding.chunk_id.in_(set_chunks))))
    doc = await _document_row(s, t, item)
    previous = doc.chunk_set_id
    doc.chunk_set_id = set_id
    if sibling is not None:
        doc.kind, doc.mime, doc.title = sibling.kind, sibling.mime, sibling.title
    doc.chunk_count, doc.token_count = chunk_set.chunk_count, chunk_set.token_count
    _describe(doc, item)
    await s.flush()
    if previous != set_id:
        await _release(s, [(t.collection_id, previous)], t.actor)
    await add_tags(s, doc.id, t.tags)
    return doc.id


def suffix_of(path: str) -> str:
    """The file type part of a chunk set's key: the loader (and so the chunks) depend on it."""
    return os.path.splitext(path)[1].lower()[:32]


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


async def delete_documents(s: AsyncSession, user_id: int, doc_ids: Sequence[int],
                           actor: int | None = None) -> int:
    """Delete documents of ``user_id``; their chunks, vectors (every generation) and
    keyword rows go too, unless an identical copy still holds them (then only what no copy
    needs goes). ``actor``: who deletes, when not the owner (``_release``).

    Returns the number of chunks removed.
    """
    removed = 0
    for first in range(0, len(doc_ids), _ID_BATCH):
        batch = list(doc_ids[first:first + _ID_BATCH])
        owned = (await s.execute(select(m.Document.id, m.Document.collection_id,
                                        m.Document.chunk_set_id).where(
            m.Document.id.in_(batch), m.Document.user_id == user_id))).all()
        if not owned:
            continue
        ids = [row[0] for row in owned]
        await s.execute(delete(m.DocumentTag).where(m.DocumentTag.document_id.in_(ids)))
        await s.execute(delete(m.Document).where(m.Document.id.in_(ids)))
        removed += await _release(s, [(row[1], row[2]) for row in owned],
                                  user_id if actor is None else actor)
    return removed


async def collect_orphans(s: AsyncSession, user_id: int) -> int:
    """Delete the user's chunk sets no document holds any more: those a member writing into
    the user's shared collection released without seeing the user's other copies. Returns
    the number of chunks removed."""
    held = select(m.Document.id).where(m.Document.chunk_set_id == m.ChunkSet.id).exists()
    orphans = (await s.execute(select(m.ChunkSet.id).where(
        m.ChunkSet.user_id == user_id, m.ChunkSet.created_by.is_distinct_from(user_id),
        ~held))).scalars().all()
    removed = 0
    for set_id in orphans:
        removed += await _drop_set(s, set_id)
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

