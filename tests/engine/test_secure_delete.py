"""Deletes that delete: no bytes of a deleted session or document linger in the files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from engine import Engine, Settings
from engine.db import models as m
from engine.db.search_backend import for_backend
from engine.history.sessions import purge_wal
from engine.ingest import store

PLAIN_CANARY = "plaincanary-91c2e"


def _files(settings: Settings) -> list[Path]:
    db = Path(make_url(settings.database_url()).database or "")
    return [db, db.with_name(db.name + "-wal")]


def _stored(settings: Settings) -> bytes:
    return b"".join(p.read_bytes() for p in _files(settings) if p.exists())


async def test_a_deleted_session_leaves_no_bytes(engine: Engine, settings: Settings,
                                                 backend: str) -> None:
    created = await engine.sessions.create("to forget", model=PLAIN_CANARY)
    msg = await engine.sessions.add_message(created.id, "user", "forget me " * 50,
                                            error=f"{PLAIN_CANARY} in a plain column")
    keep = await engine.sessions.create("to keep")
    await engine.sessions.add_message(keep.id, "user", "keep me")
    assert engine.db is not None
    async with engine.db.write() as s:
        s.add(m.Citation(user_id=engine.user_id, message_id=msg.id, marker=1, path="a.md",
                         snippet="cited"))
        token = await s.scalar(text("SELECT content FROM messages WHERE id = :id"),
                               {"id": msg.id})
        title = await s.scalar(text("SELECT title FROM sessions WHERE id = :id"),
                               {"id": created.id})
    needles = [token.encode(), title.encode(), PLAIN_CANARY.encode()]
    if backend == "sqlite":
        await purge_wal(engine.db)
        assert all(n in _stored(settings) for n in needles)  # the test can see them
    await engine.sessions.delete(created.id)
    if backend == "sqlite":
        stored = _stored(settings)  # delete() checkpointed and truncated the WAL
        assert not [n for n in needles if n in stored]
    async with engine.db.read() as s:
        for model, expected in ((m.Session, 1), (m.Message, 1), (m.Citation, 0)):
            assert await s.scalar(select(func.count()).select_from(model)) == expected
        rows = await s.execute(text("SELECT content, error, model FROM messages"))
        assert PLAIN_CANARY not in str(rows.all())
    assert [s.title for s in await engine.sessions.list()] == ["to keep"]


async def test_a_deleted_document_leaves_no_chunks_vectors_or_index_terms(
        engine: Engine, settings: Settings, backend: str) -> None:
    assert engine.db is not None
    search_backend = for_backend(engine.db.backend)
    vector = np.full(4, 4321.125, dtype=np.float32)
    other = np.full(4, 7.5, dtype=np.float32)
    async with engine.db.write() as s:
        coll = m.Collection(user_id=engine.user_id, name="c", embedder="e", dimension=4)
        s.add(coll)
        await s.flush()
        await search_backend.create_vector_index(s, coll.id, 1, 4)
        docs = []
        for name, words, vec in (("gone.md", f"zebra {PLAIN_CANARY} words", vector),
                                 ("kept.md", "ordinary words stay", other)):
            chunk_set = m.ChunkSet(user_id=engine.user_id, created_by=engine.user_id,
                                   content_hash=name)
            s.add(chunk_set)
            await s.flush()
            doc = m.Document(user_id=engine.user_id, collection_id=coll.id, source_path=name,
                             path_hash=name, chunk_set_id=chunk_set.id)
            s.add(doc)
            await s.flush()
            chunk = m.Chunk(user_id=engine.user_id, chunk_set_id=chunk_set.id, chunk_index=0,
                            text=words, content_hash=name, char_start=0,
                            char_end=len(words))
            s.add(chunk)
            await s.flush()
            s.add(m.ChunkEmbedding(chunk_id=chunk.id, generation=1, collection_id=coll.id,
                                   embedding=vec))
            docs.append(doc.id)
        coll_id = coll.id
    async with engine.db.read() as s:
        assert await search_backend.keyword(s, [coll_id], "zebra", 5)
    if backend == "sqlite":
        await purge_wal(engine.db)
        assert vector.tobytes() in _stored(settings) and b"zebra" in _stored(settings)
    async with engine.db.write() as s:
        await store.delete_documents(s, engine.user_id, [docs[0]])
    await purge_wal(engine.db)
    async with engine.db.read() as s:
        assert await search_backend.keyword(s, [coll_id], "zebra", 5) == []
        assert [len(await search_backend.keyword(s, [coll_id], "ordinary", 5))] == [1]
        nearest = await search_backend.knn(s, coll_id, 1, vector, 5)
        assert len(nearest) == 1  # only the kept document's vector is left
        assert await s.scalar(select(func.count()).select_from(m.Chunk)) == 1
        assert await s.scalar(select(func.count()).select_from(m.ChunkEmbedding)) == 1
    if backend == "sqlite":
        stored = _stored(settings)
        assert vector.tobytes() not in stored and PLAIN_CANARY.encode() not in stored
        assert b"zebra" not in stored and other.tobytes() in stored
