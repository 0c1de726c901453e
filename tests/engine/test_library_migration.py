"""Revision 0003 (chunk sets, citation hashes, watched folders) keeps existing data."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

from engine import Engine, Settings
from tests.conftest import migrate
from tests.engine.test_ingest import copy_fixtures, index_state


async def test_an_index_written_before_chunk_sets_migrates_whole(settings: Settings,
                                                                 tmp_path: Path) -> None:
    docs = copy_fixtures(tmp_path / "docs")
    await migrate(settings, from_scratch=True)
    async with Engine(settings) as engine:
        await engine.library.ingest([docs], collection="notes")
        before = await index_state(engine, "notes", docs)
        hits = [(h.path, h.text) for h in await engine.retrieval.search("the", k=5)]
        await engine.downgrade("0002")
        assert engine.db is not None
        async with engine.db.read() as s:
            # the old layout: chunks owned by their document again
            owned = await s.scalar(text("SELECT count(*) FROM chunks c JOIN documents d "
                                        "ON d.id = c.document_id"))
            assert owned == len(before["chunks"])
            await s.execute(text(
                "INSERT INTO sessions (user_id, title, archived, created_at, updated_at) "
                "SELECT id, 'x', false, created_at, created_at FROM users"))
            await s.commit()
        async with engine.db.write() as s:
            chunk_id, doc_id = (await s.execute(text(
                "SELECT id, document_id FROM chunks ORDER BY id LIMIT 1"))).one()
            await s.execute(text(
                "INSERT INTO messages (user_id, session_id, role, content, status, created_at) "
                "SELECT user_id, id, 'assistant', 'x', 'complete', created_at FROM sessions"))
            await s.execute(text(
                "INSERT INTO citations (user_id, message_id, chunk_id, document_id, marker, "
                "path, snippet) SELECT user_id, id, :c, :d, 1, 'p', 'x' FROM messages"),
                {"c": chunk_id, "d": doc_id})
        await engine.upgrade()
        assert await index_state(engine, "notes", docs) == before
        assert [(h.path, h.text) for h in await engine.retrieval.search("the", k=5)] == hits
        async with engine.db.read() as s:
            row = (await s.execute(text(
                "SELECT ci.chunk_hash, c.content_hash, ci.document_hash, d.content_hash "
                "FROM citations ci JOIN chunks c ON c.id = ci.chunk_id "
                "JOIN documents d ON d.id = ci.document_id"))).one()
        assert row[0] == row[1] and row[2] == row[3] and row[0] is not None
        # new content still links to migrated chunk sets: no embedding for a copy
        copy = tmp_path / "copy"
        copy.mkdir()
        (copy / "a.md").write_bytes(next(docs.glob("*.md")).read_bytes())
        result = await engine.library.ingest([copy], collection="notes")
        assert (result.indexed, result.linked) == (1, 1)
