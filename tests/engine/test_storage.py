"""Round trips, cascades and error mapping on both backends."""

from __future__ import annotations

import pytest
from sqlalchemy import exc, func, select, text

from engine import Engine
from engine.db import models as m


async def test_session_round_trip(engine: Engine) -> None:
    created = await engine.sessions.create("Trip planning", model="m1", system_prompt="be brief")
    first = await engine.sessions.add_message(created.id, "user", "Where to in May?")
    second = await engine.sessions.add_message(created.id, "assistant", "Lisbon.")
    detail = await engine.sessions.get(created.id)
    assert detail.session.title == "Trip planning"
    assert detail.session.system_prompt == "be brief"
    assert [msg.content for msg in detail.messages] == ["Where to in May?", "Lisbon."]
    assert detail.messages[1].parent_id == first.id
    assert second.parent_id == first.id
    listed = await engine.sessions.list()
    assert [(s.id, s.message_count) for s in listed] == [(created.id, 2)]


async def test_duplicate_key_raises_integrity_error(engine: Engine) -> None:
    assert engine.db is not None
    async with engine.db.write() as s:
        s.add(m.Meta(key="dup", value="1"))
    with pytest.raises(exc.IntegrityError):
        async with engine.db.write() as s:
            s.add(m.Meta(key="dup", value="2"))


async def test_deleting_a_session_cascades(engine: Engine) -> None:
    assert engine.db is not None
    created = await engine.sessions.create("to delete")
    msg = await engine.sessions.add_message(created.id, "user", "hi")
    async with engine.db.write() as s:
        s.add(m.Citation(user_id=engine.user_id, message_id=msg.id, marker=1, path="a.md",
                         snippet="quote"))
        s.add(m.TokenUsage(user_id=engine.user_id, session_id=created.id, message_id=msg.id,
                           kind="chat"))
    async with engine.db.write() as s:
        await s.delete(await s.get(m.Session, created.id))
    async with engine.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(m.Message)) == 0
        assert await s.scalar(select(func.count()).select_from(m.Citation)) == 0
        usage = (await s.scalars(select(m.TokenUsage))).one()
        assert usage.session_id is None and usage.message_id is None


async def test_sessions_are_scoped_by_user(engine: Engine) -> None:
    created = await engine.sessions.create("mine")
    assert engine.db is not None
    async with engine.db.write() as s:
        other = m.User(name="someone-else")
        s.add(other)
        await s.flush()
        other_id = other.id
    from engine.errors import NotFound
    from engine.history.sessions import SessionStore

    theirs = SessionStore(engine.db, other_id)
    assert await theirs.list() == []
    with pytest.raises(NotFound):
        await theirs.get(created.id)


async def test_connection_settings(engine: Engine, backend: str) -> None:
    assert engine.db is not None
    async with engine.db.read() as s:
        if backend == "sqlite":
            assert (await s.execute(text("PRAGMA journal_mode"))).scalar() == "wal"
            assert (await s.execute(text("PRAGMA foreign_keys"))).scalar() == 1
            assert (await s.execute(text("PRAGMA secure_delete"))).scalar() == 1
            assert (await s.execute(text("PRAGMA synchronous"))).scalar() == 1  # NORMAL
            assert (await s.execute(text("SELECT vec_version()"))).scalar().startswith("v")
        else:
            ext = await s.scalar(text("SELECT extversion FROM pg_extension WHERE extname='vector'"))
            assert ext is not None
