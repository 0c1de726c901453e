"""``db copy`` into databases that already hold rows: ids remapped with every reference
following (a team database), refusals (another revision, the same user's data, the same
database), ``--merge``, and a table this code has never seen."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from cryptography.fernet import Fernet
import pytest
from sqlalchemy import (
    JSON,
    Boolean,
    Column,
    Float,
    ForeignKey,
    Integer,
    String,
    Table,
    delete,
    insert,
    select,
)

from engine import Engine
from engine.db import models as m
from engine.db.coltypes import Embedding, EncryptedText, UTCDateTime, utcnow
from engine.db.connect import Database, create_engine
from engine.portable.copier import Copier
from engine.portable.plan import build_plans
from tests.conftest import PostgresServer, migrate
from tests.portable.support import (
    add_member,
    cli,
    populate,
    real_cli,
    role_name,
    settings_for,
    table_digests,
)


async def _carol(url: str) -> str:
    """Another member's data, so the target's ids are taken; returns her URL (a role of her
    own: on PostgreSQL the user is the role)."""
    await migrate(settings_for(url))
    carol_url = await add_member(url, role_name("carol"))
    async with Engine(settings_for(carol_url)) as carol:
        for i in range(3):
            s = await carol.sessions.create(f"carol {i}")
            for j in range(4):
                await carol.sessions.add_message(s.id, "user", f"carol says {i}.{j}")
        assert carol.db is not None
        async with carol.db.write() as s:
            coll = m.Collection(user_id=carol.user_id, name="notes", embedder="x", dimension=4)
            s.add(coll)
            await s.flush()
            chunk_set = m.ChunkSet(user_id=carol.user_id, created_by=carol.user_id,
                                   content_hash="c" * 64, chunk_count=5)
            s.add(chunk_set)
            await s.flush()
            s.add(m.Document(user_id=carol.user_id, collection_id=coll.id, source_path="/c",
                             path_hash="c" * 64, chunk_set_id=chunk_set.id))
            s.add_all(m.Chunk(user_id=carol.user_id, chunk_set_id=chunk_set.id,
                              chunk_index=i, text=f"carol {i}", content_hash=str(i),
                              char_start=0, char_end=1) for i in range(5))
    return carol_url


@pytest.fixture
async def pg_url(postgres_server: PostgresServer, parley_home: Path) -> object:
    name = await postgres_server.create_database()
    yield postgres_server.sqlalchemy_url(name)
    await postgres_server.drop_database(name)


async def test_team_database_remaps_every_reference(parley_home: Path, pg_url: str) -> None:
    source = f"sqlite:///{parley_home / 'mine.db'}"
    me_role = role_name("me")
    await populate(source, user=me_role, other_user=role_name("bob"))
    carol_url = await _carol(pg_url)
    before = await table_digests(pg_url)
    report = await Copier(source, pg_url).run()
    assert report.ids_shifted["messages"] == 12 and report.ids_shifted["chunks"] == 5
    assert all(t.ok for t in report.tables)
    async with Engine(settings_for(await add_member(pg_url, me_role))) as me:
        listed = {s.title: s for s in await me.sessions.list()}
        assert set(listed) == {"Battery questions", "Empty one"}
        detail = await me.sessions.get(listed["Battery questions"].id, all_branches=True)
        assert [msg.content for msg in detail.messages][:2] == \
            ["How long is the warranty?", "Two years [1]."]
        # the branch and the active leaf point at the copied messages
        ids = {msg.id for msg in detail.messages}
        assert all(msg.parent_id is None or msg.parent_id in ids for msg in detail.messages)
        assert me.db is not None
        async with me.db.read() as s:
            session = await s.get(m.Session, listed["Battery questions"].id)
            assert session is not None and session.current_message_id in ids
            cited = (await s.execute(select(m.Chunk.text).join(
                m.Citation, m.Citation.chunk_id == m.Chunk.id).where(
                m.Citation.user_id == me.user_id))).scalars().all()
            assert cited == ["The warranty covers battery replacement within two years of "
                             "purchase."]
        hits = await me.retrieval.search("battery warranty", collections=["notes"], k=1)
        assert hits[0].path == "/manuals/warranty.pdf"
        # new rows after the copy get fresh ids (the sequences moved past the copied range)
        again = await me.sessions.create("after the copy")
        await me.sessions.add_message(again.id, "user", "still works")
    async with Engine(settings_for(carol_url)) as carol:
        assert len(await carol.sessions.list()) == 3  # untouched
    after = await table_digests(pg_url)
    assert after["users"][0] == before["users"][0] + 2  # me and bob are new; carol stays


async def test_refusals_change_nothing(parley_home: Path,
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    a = f"sqlite:///{parley_home / 'a.db'}"
    b = f"sqlite:///{parley_home / 'b.db'}"
    old = f"sqlite:///{parley_home / 'old.db'}"
    await populate(a, second_user=False)
    await populate(b, second_user=False)
    before = await table_digests(b)
    # the first refusal of copy through the real process: exit code and the one line
    out = real_cli("db", "copy", "--to", b, url=a)
    assert out.returncode == 1
    assert out.stderr.count("\n") == 1 and "already holds data of user" in out.stderr
    assert "--merge" in out.stderr
    assert await table_digests(b) == before

    same = cli("db", "copy", "--to", a, url=a)
    assert same.returncode == 1 and "the same database" in same.stderr

    assert cli("db", "upgrade", "0002", url=old).returncode == 0
    stale = cli("db", "copy", "--to", old, url=a)
    assert stale.returncode == 1 and "revision 0002" in stale.stderr, stale.stderr

    nowhere = cli("db", "copy", "--to", b, url=f"sqlite:///{parley_home / 'missing.db'}")
    assert nowhere.returncode == 1 and "there is no database at" in nowhere.stderr
    assert not (parley_home / "missing.db").exists()

    usage = cli("db", "copy", url=a)
    assert usage.returncode == 2 and "--to URL or --from URL" in usage.stderr

    # a database written under another key: refused even with --merge
    foreign = f"sqlite:///{parley_home / 'foreign.db'}"
    monkeypatch.setenv("PARLEY_KEY", Fernet.generate_key().decode())
    await populate(foreign, second_user=False)
    monkeypatch.delenv("PARLEY_KEY")
    untouched = await table_digests(foreign)
    other_key = cli("db", "copy", "--to", foreign, "--merge", url=a)
    assert other_key.returncode == 1
    assert "encrypted with another key" in other_key.stderr, other_key.stderr
    assert await table_digests(foreign) == untouched


async def test_merge_copies_only_what_is_missing(parley_home: Path) -> None:
    a = f"sqlite:///{parley_home / 'a.db'}"
    b = f"sqlite:///{parley_home / 'b.db'}"
    await populate(a)
    assert cli("db", "copy", "--to", b, url=a).returncode == 0
    target = Database(create_engine(b))
    async with target.engine.begin() as conn:  # as if b came from elsewhere (a restore)
        await conn.execute(delete(m.CopyMap))
        await conn.execute(delete(m.CopyState))
    await target.dispose()
    async with Engine(settings_for(a)) as me:
        extra = await me.sessions.create("written after the first copy")
        await me.sessions.add_message(extra.id, "user", "new question")
    refused = cli("db", "copy", "--to", b, url=a)
    assert refused.returncode == 1
    merged = cli("db", "copy", "--to", b, "--merge", "--json", url=a)
    assert merged.returncode == 0, merged.stderr
    tables = {t["table"]: t for t in json.loads(merged.stdout)["tables"]}
    assert tables["sessions"]["copied"] == 1 and tables["sessions"]["skipped"] == 3
    assert tables["messages"]["copied"] == 1 and tables["chunks"]["copied"] == 0
    mine, theirs = await table_digests(a), await table_digests(b)
    # the new rows took ids after b's own (offset), everything else is identical
    assert {k: v[0] for k, v in mine.items()} == {k: v[0] for k, v in theirs.items()}
    assert {k: v for k, v in mine.items() if k not in ("sessions", "messages")} == \
        {k: v for k, v in theirs.items() if k not in ("sessions", "messages")}
    async with Engine(settings_for(b)) as me:
        newest = (await me.sessions.list())[0]
        assert newest.title == "written after the first copy" and newest.id > 4
        detail = await me.sessions.get(newest.id)
        assert [x.content for x in detail.messages] == ["new question"]


async def test_a_table_never_seen_copies_without_code_changes(parley_home: Path,
                                                              pg_url: str) -> None:
    """A table added by a later migration: references to users, sessions and itself, a
    token, a vector, JSON and times; and a link table keyed by a reference."""
    gadgets = Table(
        "gadgets", m.Base.metadata,
        Column("id", Integer, primary_key=True),
        Column("user_id", ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
        Column("session_id", ForeignKey("sessions.id", ondelete="CASCADE"), nullable=False),
        Column("parent_id", ForeignKey("gadgets.id"), nullable=True),
        Column("secret", EncryptedText(), nullable=False),
        Column("vector", Embedding(), nullable=True),
        Column("payload", JSON, nullable=False),
        Column("flag", Boolean, nullable=False),
        Column("ratio", Float, nullable=True),
        Column("seen_at", UTCDateTime(), nullable=False))
    links = Table("gadget_links", m.Base.metadata,
                  Column("gadget_id", ForeignKey("gadgets.id", ondelete="CASCADE"),
                         primary_key=True),
                  Column("label", String(50), primary_key=True))
    source = f"sqlite:///{parley_home / 'src.db'}"
    try:
        assert {"gadgets", "gadget_links"} <= {p.name for p in build_plans()}
        await populate(source, second_user=False)
        await _carol(pg_url)
        for url in (source, pg_url):
            db = Database(create_engine(url))
            async with db.engine.begin() as conn:
                await conn.run_sync(m.Base.metadata.create_all, tables=[gadgets, links])
            await db.dispose()
        async with Engine(settings_for(source)) as me:
            assert me.db is not None
            async with me.db.write() as s:
                sid = (await s.execute(select(m.Session.id).order_by(m.Session.id))).scalar()
                for i in range(1, 4):
                    await s.execute(insert(gadgets).values(
                        id=i, user_id=me.user_id, session_id=sid, parent_id=i - 1 or None,
                        secret=f"secret {i}", vector=np.arange(3, dtype=np.float32) + i,
                        payload={"i": i, "list": [1, "two", None]}, flag=i % 2 == 0,
                        ratio=i / 3, seen_at=utcnow()))
                    await s.execute(insert(links).values(gadget_id=i, label=f"l{i}"))
        report = await Copier(source, pg_url).run()
        by_table = {t.table: t for t in report.tables}
        assert by_table["gadgets"].copied == 3 and by_table["gadgets"].ok
        assert by_table["gadget_links"].copied == 3 and by_table["gadget_links"].ok
        async with Engine(settings_for(pg_url)) as me:
            assert me.db is not None
            async with me.db.read() as s:
                rows = (await s.execute(select(gadgets).order_by(gadgets.c.id))).all()
                titles = dict((await s.execute(select(m.Session.id, m.Session.title))).all())
                labels = (await s.execute(select(links.c.gadget_id, links.c.label))).all()
        assert [r.secret for r in rows] == ["secret 1", "secret 2", "secret 3"]
        assert all(titles[r.session_id] == "Battery questions" for r in rows)
        assert rows[0].parent_id is None and rows[1].parent_id == rows[0].id
        assert rows[0].id == 1 and rows[0].user_id == me.user_id  # an empty table: ids kept
        assert list(rows[2].vector) == [3.0, 4.0, 5.0]
        assert rows[2].payload == {"i": 3, "list": [1, "two", None]}
        assert {g for g, _ in labels} == {r.id for r in rows}
    finally:
        m.Base.metadata.remove(links)
        m.Base.metadata.remove(gadgets)


async def test_only_one_user(parley_home: Path) -> None:
    a = f"sqlite:///{parley_home / 'a.db'}"
    only = f"sqlite:///{parley_home / 'bob.db'}"
    await populate(a)
    out = cli("db", "copy", "--to", only, "--only-user", "bob", "--json", url=a)
    assert out.returncode == 0, out.stderr
    copied = {t["table"]: t["copied"] for t in json.loads(out.stdout)["tables"]}
    assert copied["users"] == 1 and copied["sessions"] == 1 and copied["messages"] == 1
    assert copied["chunks"] == 0 and copied["citations"] == 0
    listed = cli("--user", "bob", "sessions", "list", "--json", url=only)
    assert [s["title"] for s in json.loads(listed.stdout)] == ["Bob's secrets"]
    missing = cli("db", "copy", "--to", only, "--only-user", "nobody", url=a)
    assert missing.returncode == 1 and "no user named 'nobody'" in missing.stderr


async def test_a_difference_is_an_error_naming_the_table(parley_home: Path) -> None:
    a = f"sqlite:///{parley_home / 'a.db'}"
    b = f"sqlite:///{parley_home / 'b.db'}"
    await populate(a, second_user=False)
    assert cli("db", "copy", "--to", b, url=a).returncode == 0
    source = Database(create_engine(a))
    async with source.engine.begin() as conn:  # the source changes after the copy
        await conn.execute(delete(m.TokenUsage).where(m.TokenUsage.message_id.is_(None)))
        await conn.execute(m.Chunk.__table__.update().where(m.Chunk.id == 1)
                           .values(text="edited since"))
    await source.dispose()
    out = cli("db", "copy", "--to", b, url=a)
    assert out.returncode == 1
    assert "verification failed: chunks, token_usage differ" in out.stderr, out.stderr
    assert "DIFFERS" in out.stdout
