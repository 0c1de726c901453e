"""``engine.library``: collections, documents, ingestion runs and re-embedding.

A collection is created by its first ingestion (or ``create_collection``) with the
configured embedder's name and dimension, and its first vector index. Every verb is scoped
to the engine's user. Deletes really delete: chunks, vectors (every generation) and keyword
rows go with their document, and each delete is written to the audit log.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import AsyncGenerator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import ColumnElement, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.db.reconnect import retry_read
from engine.errors import EmbedderMismatch, NotFound, ParleyError, UsageError
from engine.ingest import store
from engine.ingest.pipeline import IngestJob, IngestOptions
from engine.ingest.reembed import Reembed
from engine.ingest.streamed import Streamed
from engine.library.copies import copies_of
from engine.teams import rls, shares
from engine.types import (
    CollectionInfo,
    DocumentInfo,
    IngestProgress,
    IngestResult,
    IngestRunInfo,
    ReindexProgress,
    ReindexResult,
)

if TYPE_CHECKING:
    from engine.facade import Engine
    from engine.providers.embedders import Embedder


def _check_name(name: str, what: str = "collection name") -> str:
    cleaned = name.strip()
    if not cleaned or len(cleaned) > 200 or any(ord(ch) < 32 for ch in cleaned):
        raise UsageError(f"invalid {what} {name!r}",
                         "use 1 to 200 printable characters")
    return cleaned


def mismatch_error(name: str, indexed: tuple[str, int], configured: tuple[str, int]) -> \
        EmbedderMismatch:
    """The error for a collection indexed with another embedder than the configured one."""
    return EmbedderMismatch(
        f"collection '{name}' was indexed with {indexed[0]} ({indexed[1]} dimensions), but "
        f"the configured embedder is {configured[0]} ({configured[1]} dimensions)",
        f"{store.reembed_hint(name)} with {configured[0]}, or configure the embedder it "
        "was indexed with")


class Library:
    """Collections and documents of one user."""

    def __init__(self, engine: Engine) -> None:
        assert engine.db is not None
        self.engine = engine
        self.db = engine.db
        self.user_id = engine.user_id

    def _name(self, collection: str | None) -> str:
        return _check_name(collection or self.engine.settings.retrieval.default_collection)

    async def _row(self, s: AsyncSession, name: str) -> m.Collection:
        row = await s.scalar(select(m.Collection).where(
            m.Collection.user_id == self.user_id, m.Collection.name == name))
        if row is None:
            raise NotFound(f"no collection named '{name}'", "see 'parley collections list'")
        return row

    # -- collections --------------------------------------------------------------------------
    @retry_read
    async def collections(self) -> list[CollectionInfo]:
        """Every collection of the user's, by name, then those shared with them (PostgreSQL
        teams) by owner and name, with their document and chunk counts."""
        docs = (select(m.Document.collection_id, func.count(),
                       func.coalesce(func.sum(m.Document.chunk_count), 0))
                .group_by(m.Document.collection_id))
        async with self.db.read() as s:
            found = await shares.visible(s, self.user_id)
            counts = {cid: (int(d), int(n)) for cid, d, n in await s.execute(
                docs.where(m.Document.collection_id.in_([v.row.id for v in found])))}
        return [CollectionInfo(v.row.id, v.label, v.row.embedder, v.row.dimension,
                               *counts.get(v.row.id, (0, 0)), owner=v.owner, access=v.access)
                for v in found]

    @retry_read
    async def collection(self, name: str | None = None) -> CollectionInfo:
        """One collection (the default one when ``name`` is None). Raises ``NotFound``."""
        wanted = self._name(name)
        for info in await self.collections():
            if info.name == wanted:
                return info
        raise NotFound(f"no collection named '{wanted}'", "see 'parley collections list'")

    async def create_collection(self, name: str) -> CollectionInfo:
        """An empty collection for the configured embedder."""
        name = _check_name(name)
        embedder = self.engine.embedder()
        dimension = await embedder.probe()
        try:
            await self._create(name, embedder.name, dimension)
        except IntegrityError:
            raise ParleyError(f"a collection named '{name}' already exists",
                              "pick another name, or ingest into it") from None
        return await self.collection(name)

    async def _create(self, name: str, embedder: str, dimension: int) -> m.Collection:
        async with self.db.write() as s:
            row = m.Collection(user_id=self.user_id, name=name, embedder=embedder,
                               dimension=dimension, vector_generation=1)
            s.add(row)
            await s.flush()
            await rls.vector_index(s, self.db.backend, row.id, 1, dimension)
            return row

    async def rename_collection(self, name: str, new_name: str) -> CollectionInfo:
        """Rename a collection (its documents and sessions follow it)."""
        name, new_name = _check_name(name), _check_name(new_name)
        try:
            async with self.db.write() as s:
                row = await self._row(s, name)
                row.name = new_name
                await s.flush()
        except IntegrityError:
            raise ParleyError(f"a collection named '{new_name}' already exists",
                              "pick another name") from None
        return await self.collection(new_name)

    async def delete_collection(self, name: str) -> CollectionInfo:
        """Delete a collection with every document, chunk, vector and keyword row of it."""
        info = await self.collection(name)
        async with self.db.write() as s:
            row = await self._row(s, info.name)
            # Dropping the vector indexes first spares a trigger call per deleted vector.
            for generation in range(1, row.vector_generation + 2):
                await rls.vector_index(s, self.db.backend, row.id, generation, None)
            doc_ids = list((await s.execute(select(m.Document.id).where(
                m.Document.collection_id == row.id, m.Document.user_id == self.user_id)))
                .scalars())
            await store.delete_documents(s, self.user_id, doc_ids)
            await s.delete(row)
            await store.audit(s, self.user_id, self.engine.settings.user, "collection.delete",
                              info.name, {"documents": info.document_count,
                                          "chunks": info.chunk_count})
        return info

    async def check_embedder(self, collection: str | None = None) -> CollectionInfo:
        """The collection, if it was indexed with the configured embedder; else raises
        ``EmbedderMismatch`` naming ``parley reindex --embed``."""
        info = await self.collection(collection)
        embedder = self.engine.embedder()
        dimension = await embedder.probe()
        if (info.embedder, info.dimension) != (embedder.name, dimension):
            raise mismatch_error(info.name, (info.embedder, info.dimension),
                                 (embedder.name, dimension))
        return info

    # -- documents ----------------------------------------------------------------------------
    @retry_read
    async def documents(self, collection: str | None = None, *,
                        status: str | None = None) -> list[DocumentInfo]:
        """Documents (of one collection, or all of yours), by collection and path. A
        collection shared with you is listed by its name too (``owner/name``)."""
        if collection is not None:
            shared = await self._shared_documents(_check_name(collection), status)
            if shared is not None:
                return shared
        return await self._documents(collection, status)

    async def _shared_documents(self, name: str, status: str | None
                                ) -> list[DocumentInfo] | None:
        async with self.db.read() as s:
            if await s.scalar(select(m.Collection.id).where(
                    m.Collection.user_id == self.user_id, m.Collection.name == name)):
                return None  # your own collection of that name comes first
            found = [v for v in await shares.visible(s, self.user_id) if v.owner is not None]
            try:
                item = shares.pick(found, name)
            except NotFound:
                return None
            stmt = (select(m.Document).where(m.Document.collection_id == item.row.id)
                    .order_by(m.Document.source_path))
            if status is not None:
                stmt = stmt.where(m.Document.status == status)
            rows = list((await s.scalars(stmt)).all())
            tags = await self._tags(s, [d.id for d in rows])
        # Copies are the owner's business: their other paths are not listed here.
        return [_doc_info(d, item.label, tags.get(d.id, ()), {}) for d in rows]

    async def _documents(self, collection: str | None, status: str | None,
                         condition: ColumnElement[bool] | None = None) -> list[DocumentInfo]:
        stmt = (select(m.Document, m.Collection.name)
                .join(m.Collection, m.Collection.id == m.Document.collection_id)
                .where(m.Document.user_id == self.user_id)
                .order_by(m.Collection.name, m.Document.source_path))
        if collection is not None:
            stmt = stmt.where(m.Collection.name == _check_name(collection))
        if status is not None:
            stmt = stmt.where(m.Document.status == status)
        if condition is not None:
            stmt = stmt.where(condition)
        async with self.db.read() as s:
            if collection is not None:
                await self._row(s, _check_name(collection))
            rows = (await s.execute(stmt)).all()
            tags = await self._tags(s, [d.id for d, _ in rows])
            copies = await copies_of(s, self.user_id, [d.chunk_set_id for d, _ in rows])
        return [_doc_info(d, name, tags.get(d.id, ()), copies) for d, name in rows]

    @retry_read
    async def document(self, doc_id: int) -> DocumentInfo:
        """One document by id. Raises ``NotFound``."""
        async with self.db.read() as s:
            row = (await s.execute(
                select(m.Document, m.Collection.name)
                .join(m.Collection, m.Collection.id == m.Document.collection_id)
                .where(m.Document.id == doc_id, m.Document.user_id == self.user_id))).first()
            if row is None:
                raise NotFound(f"no document with id {doc_id}", "see 'parley docs list'")
            tags = await self._tags(s, [doc_id])
            copies = await copies_of(s, self.user_id, [row[0].chunk_set_id])
        return _doc_info(row[0], row[1], tags.get(doc_id, ()), copies)

    async def _tags(self, s: AsyncSession, doc_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
        out: dict[int, list[str]] = {}
        for first in range(0, len(doc_ids), 500):
            rows = await s.execute(select(m.DocumentTag.document_id, m.DocumentTag.tag)
                                   .where(m.DocumentTag.document_id.in_(doc_ids[first:first + 500]))
                                   .order_by(m.DocumentTag.tag))
            for doc_id, tag in rows:
                out.setdefault(doc_id, []).append(tag)
        return {k: tuple(v) for k, v in out.items()}

    async def find_documents(self, target: int | str | os.PathLike[str], *,
                             collection: str | None = None) -> list[DocumentInfo]:
        """Documents matching an id, a file path, or every document under a folder path."""
        if isinstance(target, int):
            condition: ColumnElement[bool] = m.Document.id == target
        else:
            path = os.path.abspath(os.path.expanduser(os.fspath(target)))
            names = {path, str(Path(path).resolve())}  # as typed, and through any symlink
            condition = or_(m.Document.source_path.in_(names), *(
                m.Document.source_path.startswith(p.rstrip("/") + "/", autoescape=True)
                for p in names))
        found = await self._documents(collection, None, condition)
        if not found:
            where = f" in collection '{collection}'" if collection else ""
            raise NotFound(f"no document matches {target}{where}", "see 'parley docs list'")
        return found

    async def remove_documents(self, target: int | str | os.PathLike[str], *,
                               collection: str | None = None) -> list[DocumentInfo]:
        """Delete the matching documents with their chunks, vectors and keyword rows.

        ``target`` is a document id, a file path, or a folder (every document under it).
        """
        found = await self.find_documents(target, collection=collection)
        async with self.db.write() as s:
            chunks = await store.delete_documents(s, self.user_id, [d.id for d in found])
            await store.audit(s, self.user_id, self.engine.settings.user, "document.delete",
                              str(target), {"documents": len(found), "chunks": chunks,
                                            "ids": [d.id for d in found][:1000]})
        return found

    # -- ingestion ----------------------------------------------------------------------------
    async def _target(self, name: str, embedder: Embedder,
                      tags: Sequence[str]) -> store.Target:
        dimension = await embedder.probe()
        async with self.db.read() as s:
            row = await s.scalar(select(m.Collection).where(
                m.Collection.user_id == self.user_id, m.Collection.name == name))
            if row is None:
                shared = await shares.ingest_target(s, self.user_id, name)
                if shared is not None:
                    return self._checked_target(shared.row, shared.label, embedder,
                                                dimension, tags, owner_id=shared.row.user_id)
        if row is None:
            with contextlib.suppress(IntegrityError):  # created meanwhile by another run
                row = await self._create(name, embedder.name, dimension)
            if row is None:
                async with self.db.read() as s:
                    row = await self._row(s, name)
        return self._checked_target(row, name, embedder, dimension, tags)

    def _checked_target(self, row: m.Collection, name: str, embedder: Embedder,
                        dimension: int, tags: Sequence[str],
                        owner_id: int | None = None) -> store.Target:
        if (row.embedder, row.dimension) != (embedder.name, dimension):
            raise mismatch_error(name, (row.embedder, row.dimension), (embedder.name, dimension))
        clean_tags = tuple(dict.fromkeys(_check_name(t, "tag")[:100] for t in tags))
        # Documents in a shared collection belong to its owner; the run and the embedding
        # usage are the ingesting user's.
        return store.Target(owner_id or self.user_id, row.id, name, row.vector_generation,
                            row.embedder, clean_tags, actor_id=self.user_id)

    def ingest(self, paths: Sequence[str | os.PathLike[str]], *,
               collection: str | None = None, tags: Sequence[str] = (),
               include: Sequence[str] = (), exclude: Sequence[str] = (), prune: bool = False,
               hidden: bool = False, force: bool = False
               ) -> Streamed[IngestProgress, IngestResult]:
        """Index files and folders into a collection (created on first use).

        Iterate for an ``IngestProgress`` after each file, then the ``IngestResult``; or
        await for the result alone. Unchanged files are skipped, changed ones replaced, bad
        ones reported (the run goes on); ``prune`` removes documents under ``paths`` whose
        files are gone; ``include``/``exclude`` are globs (``*.md``, ``docs/**``); hidden
        files are read only with ``hidden``; ``force`` re-indexes unchanged files too (after
        a change of chunk settings). Raises ``EmbedderMismatch`` when the collection was
        indexed with another embedder, and ``UsageError`` for no paths.
        """
        return Streamed(self._ingest(paths, collection, IngestOptions(
            tuple(tags), tuple(include), tuple(exclude), prune, hidden, force)), IngestResult)

    async def _ingest(self, paths: Sequence[str | os.PathLike[str]], collection: str | None,
                      options: IngestOptions
                      ) -> AsyncGenerator[IngestProgress | IngestResult, None]:
        if not paths:
            raise UsageError("nothing to ingest", "name at least one file or folder")
        embedder = self.engine.embedder()
        target = await self._target(self._name(collection), embedder, options.tags)
        job = IngestJob(self.engine, embedder, target, [os.fspath(p) for p in paths],
                        dataclasses.replace(options, tags=target.tags))
        async with contextlib.aclosing(job.events()) as events:
            async for event in events:
                yield event

    async def run_ingest(self, paths: Sequence[str | os.PathLike[str]],
                         **options: Any) -> IngestResult:
        """``await ingest(...)``: run to the end and return only the result."""
        return await self.ingest(paths, **options)

    @retry_read
    async def runs(self, collection: str | None = None, *, limit: int = 20) -> list[IngestRunInfo]:
        """Recent ingestion runs, newest first, with their per-file errors."""
        stmt = (select(m.IngestionRun, m.Collection.name)
                .outerjoin(m.Collection, m.Collection.id == m.IngestionRun.collection_id)
                .where(m.IngestionRun.user_id == self.user_id)
                .order_by(m.IngestionRun.id.desc()).limit(limit))
        if collection is not None:
            stmt = stmt.where(m.Collection.name == _check_name(collection))
        async with self.db.read() as s:
            rows = (await s.execute(stmt)).all()
        return [_run_info(r, name) for r, name in rows]

    # -- re-embedding -------------------------------------------------------------------------
    def reindex(self, collection: str | None = None, *, embed: bool = True,
                force: bool = False) -> Streamed[ReindexProgress, ReindexResult]:
        """Re-embed every chunk of a collection with the configured embedder, then swap.

        Iterate for progress, or await for the ``ReindexResult``. Keyword search keeps
        working meanwhile and vector search keeps the old vectors until the swap; an
        interrupted run resumes where it stopped. Does nothing (``status="unchanged"``)
        when the collection already uses this embedder, unless ``force``. Re-reading the
        files (after changing chunk settings) is ``ingest(..., force=True)``.
        """
        return Streamed(self._reindex(collection, embed, force), ReindexResult)

    async def _reindex(self, collection: str | None, embed: bool, force: bool
                       ) -> AsyncGenerator[ReindexProgress | ReindexResult, None]:
        if not embed:
            raise UsageError("reindex only re-embeds for now",
                             "use 'parley ingest --force PATH' to re-read and re-chunk files")
        job = Reembed(self.engine, self.engine.embedder(), self._name(collection), force=force)
        async with contextlib.aclosing(job.events()) as events:
            async for event in events:
                yield event

    async def run_reindex(self, collection: str | None = None, **options: Any) -> ReindexResult:
        """``await reindex(...)``: run to the end and return only the result."""
        return await self.reindex(collection, **options)


def _doc_info(d: m.Document, collection: str, tags: tuple[str, ...],
              copies: dict[int, list[tuple[int, str, str]]]) -> DocumentInfo:
    others = tuple((name, path) for doc_id, name, path in copies.get(d.chunk_set_id or 0, ())
                   if doc_id != d.id)
    return DocumentInfo(d.id, collection, d.source_path, d.title, d.mime, d.size, d.status,
                        d.error, d.chunk_count, d.indexed_at, tags, others)


def _run_info(r: m.IngestionRun, collection: str | None) -> IngestRunInfo:
    errors = tuple((str(e.get("path", "")), str(e.get("reason", ""))) for e in r.errors or ()
                   if isinstance(e, dict))
    return IngestRunInfo(r.id, collection, r.status, tuple(str(t) for t in r.target or ()),
                         r.started_at, r.finished_at, r.files_seen, r.indexed, r.skipped,
                         r.failed, r.pruned, r.chunks, errors)
