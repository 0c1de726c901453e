"""Sessions as data: rename, archive, delete, export and import, history search."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import func, select, text

from engine import Engine
from engine.db import models as m
from engine.errors import DecryptionError, NotFound, UsageError
from engine.history.transfer import InvalidExport
from engine.history.sessions import SessionStore


async def _rich_session(engine: Engine) -> int:
    """A session with a branch, statuses, an error, citations and a collection."""
    assert engine.db is not None
    async with engine.db.write() as s:
        s.add(m.Collection(user_id=engine.user_id, name="notes", embedder="e", dimension=4))
    created = await engine.sessions.create("Trip: Lisbon & Porto", model="llama3",
                                           provider="ollama", system_prompt="Be brief.\nCite.",
                                           collections=["notes"])
    q = await engine.sessions.add_message(created.id, "user", "Where to in **May**?")
    a1 = await engine.sessions.add_message(created.id, "assistant", "Lisbon [1].",
                                           model="llama3", status="interrupted")
    await engine.sessions.add_message(created.id, "user", "And after?")
    await engine.sessions.add_message(created.id, "assistant", "", status="error",
                                      error="server hung up")
    await engine.sessions.add_message(created.id, "assistant", "Porto, then Lisbon [1][2].",
                                      parent_id=q.id, model="llama3")
    async with engine.db.write() as s:
        for msg_id, marker, page in ((a1.id, 1, 3), (a1.id + 3, 1, None), (a1.id + 3, 2, 7)):
            s.add(m.Citation(user_id=engine.user_id, message_id=msg_id, marker=marker,
                             position=marker * 10, path=f"guides/{marker}.pdf", page=page,
                             line_start=4, line_end=9, score=0.5 + marker / 10,
                             snippet=f"snippet {marker} «quoted»\nsecond line"))
    return created.id


async def test_json_export_round_trips_exactly(engine: Engine) -> None:
    session_id = await _rich_session(engine)
    exported = await engine.sessions.export(session_id, "json")
    doc = json.loads(exported)
    assert doc["format"] == "parley-session" and doc["version"] == 1
    assert [msg["parent"] for msg in doc["messages"]] == [None, 1, 2, 3, 1]
    assert doc["session"]["current"] == 5 and doc["session"]["collections"] == ["notes"]
    imported = await engine.sessions.import_(exported)
    assert imported.session.id != session_id
    assert (imported.messages, imported.citations) == (5, 3)
    assert imported.session.collections == ("notes",)
    assert await engine.sessions.export(imported.session.id, "json") == exported
    original = await engine.sessions.get(session_id, all_branches=True)
    copy = await engine.sessions.get(imported.session.id, all_branches=True)
    assert [(x.role, x.content, x.status, x.error, x.created_at) for x in copy.messages] == \
        [(x.role, x.content, x.status, x.error, x.created_at) for x in original.messages]
    assert not {x.id for x in copy.messages} & {x.id for x in original.messages}
    active = await engine.sessions.get(imported.session.id)
    assert [x.content for x in active.messages] == ["Where to in **May**?",
                                                    "Porto, then Lisbon [1][2]."]


async def test_import_into_another_database_skips_missing_collections(engine: Engine) -> None:
    session_id = await _rich_session(engine)
    doc = json.loads(await engine.sessions.export(session_id, "json"))
    doc["session"]["collections"] = ["notes", "elsewhere"]
    result = await engine.sessions.import_(json.dumps(doc))
    assert result.session.collections == ("notes",)
    assert result.skipped_collections == ("elsewhere",)


async def test_markdown_export_shows_the_active_branch(engine: Engine) -> None:
    session_id = await _rich_session(engine)
    md = await engine.sessions.export(session_id, "md")
    assert md.startswith("# Trip: Lisbon & Porto\n")
    assert "## System prompt\n\nBe brief.\nCite." in md
    assert "Porto, then Lisbon [1][2]." in md and "And after?" not in md
    assert "3 message(s) on other branches are not shown" in md
    assert "[2] guides/2.pdf, p. 7, lines 4-9" in md and "    > second line" in md
    assert "Collections: notes" in md
    with pytest.raises(UsageError):
        await engine.sessions.export(session_id, "pdf")


def _valid_doc() -> dict:
    when = "2025-05-01T10:00:00+00:00"
    return {"format": "parley-session", "version": 1,
            "session": {"title": "t", "created_at": when, "updated_at": when, "current": 2},
            "messages": [{"id": 1, "role": "user", "content": "q", "created_at": when},
                         {"id": 2, "parent": 1, "role": "assistant", "content": "a",
                          "created_at": when, "citations": [{"marker": 1, "path": "p",
                                                             "snippet": "s"}]}]}


def _broken(change: str) -> bytes:
    doc = _valid_doc()
    if change == "role":
        doc["messages"][1]["role"] = "robot"
    elif change == "missing title":
        del doc["session"]["title"]
    elif change == "unknown field":
        doc["messages"][0]["colour"] = "red"
    elif change == "duplicate id":
        doc["messages"][1]["id"] = 1
    elif change == "forward parent":
        doc["messages"][0]["parent"] = 2
    elif change == "dangling current":
        doc["session"]["current"] = 9
    elif change == "format":
        doc["format"] = "chatgpt"
    elif change == "bad time":
        doc["messages"][0]["created_at"] = "yesterday"
    elif change == "citation":
        doc["messages"][1]["citations"][0]["marker"] = "one"
    return json.dumps(doc).encode()


@pytest.mark.parametrize(("data", "fragment"), [
    (b"{not json", "is not valid JSON"),
    (b"\xff\xfe\x00garbage", "is not UTF-8 text"),
    (b"[]", "is not a Parley session export"),
    (_broken("role"), "messages[1].role"),
    (_broken("missing title"), "session.title: Field required"),
    (_broken("unknown field"), "messages[0].colour"),
    (_broken("duplicate id"), "messages[1].id 1 appears twice"),
    (_broken("forward parent"), "messages[0].parent 2 names no earlier message"),
    (_broken("dangling current"), "session.current 9 names no message"),
    (_broken("format"), "format"),
    (_broken("bad time"), "messages[0].created_at"),
    (_broken("citation"), "messages[1].citations[0].marker"),
])
async def test_malformed_import_is_refused_and_writes_nothing(engine: Engine, data: bytes,
                                                              fragment: str) -> None:
    with pytest.raises(InvalidExport) as info:
        await engine.sessions.import_(data, name="chat.json")
    assert fragment in str(info.value) and str(info.value).startswith("chat.json")
    assert info.value.hint and "export" in info.value.hint
    assert engine.db is not None
    async with engine.db.read() as s:
        for model in (m.Session, m.Message, m.Citation):
            assert await s.scalar(select(func.count()).select_from(model)) == 0
    assert (await engine.sessions.import_(json.dumps(_valid_doc()))).messages == 2


async def test_json_export_refuses_unreadable_values(engine: Engine) -> None:
    created = await engine.sessions.create("one bad value")
    msg = await engine.sessions.add_message(created.id, "user", "fine")
    bad = await engine.sessions.add_message(created.id, "assistant", "lost")
    assert engine.db is not None
    async with engine.db.write() as s:
        await s.execute(text("UPDATE messages SET content = 'gAAAAAbroken' WHERE id = :id"),
                        {"id": bad.id})
    with pytest.raises(DecryptionError, match=f"message {bad.id}"):
        await engine.sessions.export(created.id, "json")
    md = await engine.sessions.export(created.id, "md")
    assert "fine" in md and "[unreadable" in md and msg.id < bad.id


async def test_rename_archive_and_list(engine: Engine) -> None:
    first = await engine.sessions.create("first")
    second = await engine.sessions.create("second")
    renamed = await engine.sessions.rename(first.id, "  Renamed ✓ ")
    assert renamed.title == "Renamed ✓"
    with pytest.raises(UsageError):
        await engine.sessions.rename(first.id, "   ")
    archived = await engine.sessions.set_archived(second.id)
    assert archived.archived
    assert [s.id for s in await engine.sessions.list()] == [first.id]
    listed = await engine.sessions.list(include_archived=True)
    assert {s.id: s.title for s in listed} == {first.id: "Renamed ✓", second.id: "second"}
    assert not (await engine.sessions.set_archived(second.id, False)).archived
    with pytest.raises(NotFound):
        await engine.sessions.rename(9999, "x")


async def test_delete_removes_everything_and_audits_without_the_title(engine: Engine) -> None:
    session_id = await _rich_session(engine)
    keep = await engine.sessions.create("keep")
    await engine.sessions.add_message(keep.id, "user", "still here")
    assert engine.db is not None
    async with engine.db.write() as s:
        s.add(m.TokenUsage(user_id=engine.user_id, session_id=session_id, kind="chat",
                           prompt_tokens=12))
    gone = await engine.sessions.delete(session_id)
    assert (gone.id, gone.messages, gone.citations) == (session_id, 5, 3)
    async with engine.db.read() as s:
        assert await s.scalar(select(func.count()).select_from(m.Message)) == 1
        assert await s.scalar(select(func.count()).select_from(m.Citation)) == 0
        usage = (await s.scalars(select(m.TokenUsage))).one()
        assert usage.session_id is None and usage.prompt_tokens == 12
        audit = (await s.scalars(select(m.AuditLog))).one()
    assert (audit.action, audit.target) == ("session.delete", f"session:{session_id}")
    assert "Lisbon" not in json.dumps(audit.detail) and audit.actor == engine.settings.user
    with pytest.raises(NotFound):
        await engine.sessions.get(session_id)
    with pytest.raises(NotFound):
        await engine.sessions.delete(session_id)


async def test_other_users_sessions_are_out_of_reach(engine: Engine) -> None:
    session_id = await _rich_session(engine)
    assert engine.db is not None
    async with engine.db.write() as s:
        other = m.User(name="mallory")
        s.add(other)
        await s.flush()
        other_id = other.id
    theirs = SessionStore(engine.db, other_id)
    for call in (theirs.rename(session_id, "x"), theirs.delete(session_id),
                 theirs.export(session_id, "json"), theirs.set_archived(session_id)):
        with pytest.raises(NotFound):
            await call
    assert (await theirs.search("Lisbon")).hits == ()
    assert len((await engine.sessions.search("Lisbon")).hits) == 3


async def test_history_search(engine: Engine) -> None:
    trip = await engine.sessions.create("Äpfel und Birnen")
    for i in range(7):
        await engine.sessions.add_message(trip.id, "user", f"message {i} about a.b* and (x")
    await engine.sessions.add_message(trip.id, "assistant", "Wir essen ÄPFEL.\n\nJa, " + "x" * 300)
    other = await engine.sessions.create("unrelated")
    await engine.sessions.add_message(other.id, "user", "nothing here")
    found = await engine.sessions.search("äpfel", batch_size=2)
    assert [(h.message_id is None, h.session_id) for h in found.hits] == \
        [(True, trip.id), (False, trip.id)]
    hit = found.hits[1]
    assert hit.role == "assistant" and hit.session_title == "Äpfel und Birnen"
    assert hit.snippet[hit.match_start:hit.match_end] == "ÄPFEL"
    assert "\n" not in hit.snippet and hit.snippet.endswith("…")
    literal = await engine.sessions.search("A.B* AND (X", batch_size=3)
    assert len(literal.hits) == 7 and not literal.truncated
    assert [h.snippet[:9] for h in literal.hits] == [f"message {i}" for i in range(6, -1, -1)]
    limited = await engine.sessions.search("about", limit=3, batch_size=2)
    assert len(limited.hits) == 3 and limited.truncated
    assert (await engine.sessions.search("nowhere to be found")).hits == ()
    with pytest.raises(UsageError):
        await engine.sessions.search("   ")


async def test_show_every_branch_in_creation_order(engine: Engine) -> None:
    session_id = await _rich_session(engine)
    every = await engine.sessions.get(session_id, all_branches=True)
    assert [x.id for x in every.messages] == sorted(x.id for x in every.messages)
    assert len(every.messages) == 5 and every.session.message_count == 5
    cited = [x for x in every.messages if x.citations]
    assert [[c.marker for c in x.citations] for x in cited] == [[1], [1, 2]]
    assert cited[1].citations[1].snippet == "snippet 2 «quoted»\nsecond line"


async def test_import_keeps_timestamps_in_utc(engine: Engine) -> None:
    doc = _valid_doc()
    doc["messages"][0]["created_at"] = "2025-05-01T12:00:00+02:00"
    result = await engine.sessions.import_(json.dumps(doc))
    detail = await engine.sessions.get(result.session.id)
    assert detail.messages[0].created_at == datetime(2025, 5, 1, 10, tzinfo=UTC)
    assert detail.session.updated_at - detail.session.created_at == timedelta(0)
