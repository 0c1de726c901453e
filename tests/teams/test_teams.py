"""PostgreSQL teams: identity from the role, a key per user, row-level security, the owner's
verbs and shared collections. Real roles on the embedded server; the CLI as each person
(the real command for every refusal a member meets, in-process for the other steps); raw
SQL (asyncpg) as each member. SQLite: unchanged (its own tests, plus the
migration test here on both backends)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from sqlalchemy import select, text

from engine import Engine, Settings
from engine.db import models as m
from engine.db.pg_search import index_name
from tests.conftest import PostgresServer, migrate
from tests.teams.support import REPO, Person, TeamDatabase

DOCS = REPO / "tests" / "fixtures" / "docs"


@pytest.fixture
async def team(postgres_server: PostgresServer, parley_home: Path,
               tmp_path: Path) -> AsyncIterator[tuple[TeamDatabase, Person, Person, Person]]:
    """An owner who ran ``db upgrade`` and added alice and bob (``--create``), in-process
    (the tests below run what a member meets as a process through the real command)."""
    db = TeamDatabase(postgres_server.admin_url, tmp_path)
    owner = await db.create()
    try:
        up = owner.steps("db", "upgrade")
        assert up.returncode == 0, up.stderr
        alice, bob = db.person(db.role("alice")), db.person(db.role("bob"))
        secret = tmp_path / "pw"
        secret.write_text("s3cret'; DROP ROLE x; --\n")
        for person in (alice, bob):
            added = owner.steps("team", "add", person.role, "--create", "--password-file",
                                str(secret))
            assert added.returncode == 0, added.stderr
        yield db, owner, alice, bob
    finally:
        await db.drop()


async def _history(person: Person, title: str) -> None:
    async with person.engine() as engine:
        session = await engine.sessions.create(title)
        await engine.sessions.add_message(session.id, "user", f"{title}: a private question")


async def _titles(person: Person) -> list[str]:
    async with person.engine() as engine:
        return sorted(s.title for s in await engine.sessions.list())


async def test_each_member_sees_only_their_own_history_through_parley_and_sql(team) -> None:
    db, owner, alice, bob = team
    for person in (owner, alice, bob):
        await _history(person, f"{person.role} notes")
    for person in (owner, alice, bob):
        assert await _titles(person) == [f"{person.role} notes"]
        listed = person.cli("sessions", "list", "--json")
        assert listed.returncode == 0, listed.stderr
        assert f"{person.role} notes" in listed.stdout
        others = {p.role for p in (owner, alice, bob)} - {person.role}
        assert not any(f"{o} notes" in listed.stdout for o in others)

    conn = await alice.sql()
    su = await db.superuser()
    try:
        alice_id = await su.fetchval("SELECT id FROM users WHERE name = $1", alice.role)
        bob_id = await su.fetchval("SELECT id FROM users WHERE name = $1", bob.role)
        bob_session = await su.fetchval("SELECT id FROM sessions WHERE user_id = $1", bob_id)
        assert await su.fetchval("SELECT count(*) FROM messages") == 3
        # a member's raw SELECT returns only their rows, and those only as tokens
        rows = await conn.fetch("SELECT user_id, content FROM messages")
        assert [r["user_id"] for r in rows] == [alice_id]
        assert rows[0]["content"].startswith("gAAAAA") and "private" not in rows[0]["content"]
        for table in ("sessions", "token_usage", "audit_log", "user_keys", "citations"):
            assert await conn.fetchval(
                f"SELECT count(*) FROM {table} WHERE user_id <> $1", alice_id) == 0
        # writing a row for another user fails; changing or deleting theirs touches nothing
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await conn.execute("INSERT INTO sessions (user_id, title, archived, created_at, "
                               "updated_at) VALUES ($1, 'x', false, now(), now())", bob_id)
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await conn.execute("INSERT INTO messages (user_id, session_id, role, content, "
                               "status, created_at) VALUES ($1, $2, 'user', 'x', 'complete', "
                               "now())", bob_id, bob_session)
        assert await conn.execute("UPDATE sessions SET title = 'owned' WHERE user_id = $1",
                                  bob_id) == "UPDATE 0"
        assert await conn.execute("DELETE FROM messages WHERE user_id = $1",
                                  bob_id) == "DELETE 0"
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="row-level security"):
            await conn.execute("UPDATE sessions SET user_id = $1", bob_id)  # give rows away
        # no DDL, no way around the policies
        for statement in ("ALTER TABLE messages DISABLE ROW LEVEL SECURITY",
                          "DROP POLICY parley_own ON messages", "CREATE TABLE x (a int)",
                          "SET row_security = off; SELECT * FROM messages",
                          "INSERT INTO users (name, created_at) VALUES ('mallory', now())"):
            with pytest.raises((asyncpg.InsufficientPrivilegeError,
                                asyncpg.InvalidSchemaNameError)):
                await conn.execute(statement)
        assert await su.fetchval("SELECT count(*) FROM messages") == 3
    finally:
        await conn.close()
        await su.close()


async def test_the_user_is_the_role_and_keys_are_per_user(team) -> None:
    db, owner, alice, bob = team
    await _history(alice, "alice notes")
    await _history(bob, "bob notes")
    # alice's role claiming to be bob: refused, naming both, nothing of bob's shown
    for args, config in ((("--user", bob.role), None), ((), {"user": bob.role})):
        out = alice.cli(*args, "sessions", "list", "--json", config=config)
        assert out.returncode == 2, out.stderr
        assert bob.role in out.stderr and alice.role in out.stderr
        assert "bob notes" not in out.stdout + out.stderr
        assert len(out.stderr.strip().splitlines()) == 1
    # a user: setting that agrees is fine
    assert alice.steps("sessions", "list", config={"user": alice.role}).returncode == 0
    (alice.home / "config.yaml").unlink()
    # alice's key with bob's role: bob's check value refuses it before anything is read
    stolen = Person(bob.role, bob.url, alice.home)
    out = stolen.cli("sessions", "list", "--json")
    assert out.returncode == 1 and "does not match" in out.stderr, out.stderr
    assert "bob notes" not in out.stdout
    # each key opens only its owner's history
    assert (alice.home / "key").read_text() != (bob.home / "key").read_text()

    # rotation re-encrypts only the caller's rows
    su = await db.superuser()
    try:
        before = dict(await su.fetch("SELECT m.id, m.content FROM messages m "
                                     "JOIN users u ON u.id = m.user_id WHERE u.name = $1",
                                     bob.role))
        rotated = alice.steps("key", "rotate")
        assert rotated.returncode == 0, rotated.stderr
        after = dict(await su.fetch("SELECT m.id, m.content FROM messages m "
                                    "JOIN users u ON u.id = m.user_id WHERE u.name = $1",
                                    bob.role))
        assert after == before
        actors = await su.fetch("SELECT actor FROM audit_log WHERE action = 'key.rotate'")
        assert [r["actor"] for r in actors] == [alice.role]
    finally:
        await su.close()
    assert await _titles(alice) == ["alice notes"]
    assert await _titles(bob) == ["bob notes"]
    status = bob.steps("key", "status", "--json")
    assert status.returncode == 0 and json.loads(status.stdout)["rotation"] is None


async def test_team_verbs_are_the_owners(team) -> None:
    db, owner, alice, bob = team
    listed = owner.steps("team", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    members = {m["name"]: m for m in json.loads(listed.stdout)["members"]}
    assert members[owner.role]["owner"] and members[alice.role]["member"]
    assert members[bob.role]["can_login"] and not members[bob.role]["owner"]
    carol = db.role("carol")
    for n, args in enumerate((("team", "add", carol, "--create"), ("team", "remove", bob.role),
                              ("team", "remove", bob.role, "--purge", "--yes"),
                              ("team", "list"))):
        out = (alice.cli if n == 0 else alice.steps)(*args)  # the first as a process
        assert out.returncode == 1, (args, out.stderr)
        assert "only the database owner" in out.stderr and owner.role in out.stderr
    su = await db.superuser()
    try:
        assert await su.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", carol) == 0
        assert await su.fetchval("SELECT pg_has_role($1, 'parley_member', 'MEMBER')", bob.role)
        # a role with no grants at all: one line naming the fix
        await su.execute(f'CREATE ROLE "{carol}" LOGIN')
        out = db.person(carol).cli("sessions", "list")
        assert out.returncode == 1
        assert len(out.stderr.strip().splitlines()) == 1
        assert f"parley team add {carol}" in out.stderr
        # adding it needs no --create; it can then use Parley
        assert owner.steps("team", "add", carol).returncode == 0
        assert db.person(carol).steps("sessions", "list").returncode == 0

        await _history(bob, "bob notes")
        out = owner.steps("team", "remove", bob.role)
        assert out.returncode == 0, out.stderr
        assert await su.fetchval("SELECT count(*) FROM sessions s JOIN users u ON "
                                 "u.id = s.user_id WHERE u.name = $1", bob.role) == 1
        denied = bob.cli("sessions", "list")
        assert denied.returncode == 1 and f"parley team add {bob.role}" in denied.stderr
        out = owner.steps("team", "remove", bob.role, "--purge", "--yes")
        assert out.returncode == 0, out.stderr
        assert await su.fetchval("SELECT count(*) FROM users WHERE name = $1", bob.role) == 0
        assert await su.fetchval("SELECT count(*) FROM messages") == 0
    finally:
        await su.close()


def _json(out) -> dict:
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


async def test_a_shared_collection_is_searchable_by_both_members(team) -> None:
    db, owner, alice, bob = team
    # the steps of the scenario run in-process; what a member is refused, as a process
    assert owner.steps("ingest", str(DOCS), "--collection", "handbook").returncode == 0
    assert alice.steps("ingest", str(DOCS / "guide.md"), "--collection", "mine").returncode == 0
    handbook = f"{owner.role}/handbook"
    assert _json(alice.steps("collections", "list", "--json"))["collections"][0]["name"] == \
        "mine"
    assert _json(bob.steps("search", "install", "--json"))["hits"] == []

    # sharing someone else's collection, or with nobody named: errors, nothing changed
    out = alice.cli("collections", "share", "handbook", "--all")
    assert out.returncode == 1 and "you have no collection" in out.stderr
    shared = owner.steps("collections", "share", "handbook", "--all")
    assert shared.returncode == 0, shared.stderr
    out = alice.cli("collections", "share", "handbook", "--with", bob.role)
    assert out.returncode == 1 and f"belongs to {owner.role}" in out.stderr

    for person in (alice, bob):
        listed = _json(person.steps("collections", "list", "--json"))["collections"]
        found = {c["name"]: c for c in listed}
        assert found[handbook]["owner"] == owner.role and found[handbook]["access"] == "read"
        assert found[handbook]["document_count"] >= 3
        hits = _json(person.steps("search", "install", "--collection", "handbook", "--json"))
        assert hits["hits"] and all(h["owner"] == owner.role for h in hits["hits"])
        text = person.steps("search", "install", "--collection", handbook)
        assert f"{owner.role}:{DOCS}" in text.stdout, text.stderr
        docs = person.steps("docs", "list", "--collection", "handbook", "--json")
        assert docs.returncode == 0, docs.stderr
        assert str(DOCS / "guide.md") in docs.stdout and handbook in docs.stdout
    # the owner's own search of it names no owner
    assert all("owner" not in h for h in
               _json(owner.steps("search", "install", "--json"))["hits"])

    # chat retrieval: citations name the owner
    asked = alice.steps("ask", "--new", "--collection", "handbook", "how do I install it?")
    assert asked.returncode == 0, asked.stderr
    async with alice.engine() as engine:
        latest = (await engine.sessions.list())[0]
        detail = await engine.sessions.get(latest.id)
    cited = [c.path for msg in detail.messages for c in msg.citations]
    assert cited and all(p.startswith(f"{owner.role}:") for p in cited)

    # read-only: ingesting into it is refused and writes nothing
    su = await db.superuser()
    try:
        docs_before = await su.fetchval("SELECT count(*) FROM documents")
        out = alice.cli("ingest", str(REPO / "tests" / "fixtures" / "ingest" / "notes.md"),
                        "--collection", "handbook")
        assert out.returncode == 1 and "read-only" in out.stderr, out.stderr
        assert await su.fetchval("SELECT count(*) FROM documents") == docs_before
        # raw SQL as bob: reads the shared chunks, cannot change them
        conn = await bob.sql()
        try:
            assert await conn.fetchval("SELECT count(*) FROM chunks") > 0
            assert await conn.execute("DELETE FROM chunks") == "DELETE 0"
            assert await conn.execute("UPDATE documents SET title = 'x'") == "UPDATE 0"
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("SELECT parley_vector_index("
                                   "(SELECT min(id) FROM collections), 9, 3, true)")
        finally:
            await conn.close()
        # a write share lets alice ingest (by owner/name), not bob
        assert owner.steps("collections", "share", "handbook", "--with", alice.role,
                           "--write").returncode == 0
        notes = str(REPO / "tests" / "fixtures" / "ingest" / "notes.md")
        out = alice.steps("ingest", notes, "--collection", handbook)
        assert out.returncode == 0, out.stderr
        assert await su.fetchval("SELECT count(*) FROM documents") == docs_before + 1
        assert bob.cli("ingest", notes, "--collection", "handbook").returncode == 1
        # unsharing takes it away from both
        assert owner.steps("collections", "unshare", "handbook", "--all").returncode == 0
        for person in (alice, bob):
            names = [c["name"] for c in
                     _json(person.steps("collections", "list", "--json"))["collections"]]
            assert handbook not in names
            out = person.cli("search", "install", "--collection", handbook)
            assert out.returncode == 1 and "no collection" in out.stderr
    finally:
        await su.close()


async def test_rls_covers_every_user_table_and_members_hold_no_ddl(team) -> None:
    db, owner, alice, bob = team
    su = await db.superuser()
    try:
        tables = await su.fetch(
            "SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = 'public' "
            "AND c.relkind = 'r' AND EXISTS (SELECT 1 FROM pg_attribute a WHERE "
            "a.attrelid = c.oid AND a.attname IN ('user_id', 'collection_id', 'session_id', "
            "'document_id') AND NOT a.attisdropped)")
        assert len(tables) >= 12
        for row in tables:
            assert row["relrowsecurity"] and row["relforcerowsecurity"], row["relname"]
        member = await su.fetchrow("SELECT rolbypassrls, rolcreaterole, rolcreatedb, "
                                   "rolsuper FROM pg_roles WHERE rolname = 'parley_member'")
        assert not any(member.values())
        assert not await su.fetchval("SELECT has_schema_privilege('parley_member', 'public', "
                                     "'CREATE')")
        owned = await su.fetchval("SELECT count(*) FROM pg_class c JOIN pg_roles r ON "
                                  "r.oid = c.relowner WHERE r.rolname IN ($1, $2)",
                                  alice.role, bob.role)
        assert owned == 0
        # the function that makes vector indexes builds the names search expects
        assert index_name(7, 2) == "ix_vec_c7_g2"
        src = await su.fetchval("SELECT prosrc FROM pg_proc WHERE proname = "
                                "'parley_vector_index'")
        assert "ix_vec_c%s_g%s" in src
    finally:
        await su.close()


async def test_migration_moves_the_key_to_the_user_and_back(settings: Settings,
                                                            backend: str) -> None:
    await migrate(settings, from_scratch=True)
    async with Engine(settings) as engine:
        await engine.sessions.create("kept across the migration")
        assert engine.db is not None
        async with engine.db.read() as s:
            check = await s.scalar(select(m.UserKey.key_check))
    async with Engine(settings, migrate=False) as admin:
        await admin.downgrade("0002")
        assert admin.db is not None
        async with admin.db.read() as s:
            meta = dict((await s.execute(text("SELECT key, value FROM parley_meta"))).all())
        assert meta["key_check"] == check
        if backend == "postgresql":
            async with admin.db.read() as s:
                assert not await s.scalar(text(
                    "SELECT relrowsecurity FROM pg_class WHERE relname = 'messages'"))
        await admin.upgrade()
    async with Engine(settings) as engine:
        assert [s.title for s in await engine.sessions.list()] == ["kept across the migration"]
        assert engine.db is not None
        async with engine.db.read() as s:
            assert await s.scalar(select(m.UserKey.key_check)) == check
            assert await s.scalar(text("SELECT count(*) FROM parley_meta")) == 0


def test_sqlite_has_one_user_and_no_team(parley_home: Path) -> None:
    person = Person("me", f"sqlite:///{parley_home / 'parley.db'}", parley_home)
    assert person.steps("ingest", str(DOCS / "guide.md"), "--collection",
                        "notes").returncode == 0
    for n, args in enumerate((("team", "list"), ("team", "add", "bob"),
                              ("collections", "share", "notes", "--all"))):
        out = (person.cli if n == 0 else person.steps)(*args)  # the first as a process
        assert out.returncode == 2 and "needs PostgreSQL" in out.stderr, (args, out.stderr)
    # the user setting still chooses the user there, as before
    mine = _json(person.steps("collections", "list", "--json"))["collections"]
    other = _json(person.steps("--user", "someone-else", "collections", "list", "--json"))
    assert [c["name"] for c in mine] == ["notes"] and other["collections"] == []
