"""``db copy``, ``db check`` and ``backup`` on a PostgreSQL team (row-level security FORCEd
on every user table): the real CLI as the schema owner (not a superuser) and as members.

- A member copies their laptop's SQLite into the team database: it lands on their role's
  user, under the policies (their ids come from the sequences: they cannot see the
  others' largest ids), and the other members' rows are untouched.
- A member copies the team database out: only their own rows; a collection someone shared
  with them stays behind, and a citation of it keeps its file and snippet without a link.
- The owner copies everyone out and into another team database (FORCE RLS there too).
- ``db check`` as a member says what it checked; backups: a member's holds their data,
  the owner's everyone's.
"""

from __future__ import annotations

import json
import shutil
import tarfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.db import models as m
from engine.db.connect import Database, create_engine
from tests.conftest import PostgresServer
from tests.portable.support import cli, populate, table_digests
from tests.teams.support import Person, TeamDatabase


@pytest.fixture
async def team(postgres_server: PostgresServer, parley_home: Path, tmp_path: Path
               ) -> AsyncIterator[tuple[TeamDatabase, Person, Person, Person]]:
    db = TeamDatabase(postgres_server.admin_url, tmp_path)
    owner = await db.create()
    try:
        assert owner.steps("db", "upgrade").returncode == 0
        alice, bob = db.person(db.role("alice")), db.person(db.role("bob"))
        for person in (alice, bob):
            added = owner.steps("team", "add", person.role, "--create")
            assert added.returncode == 0, added.stderr
        yield db, owner, alice, bob
    finally:
        await db.drop()


async def _rows(url: str, model: type, **where: object) -> int:
    db = Database(create_engine(url))
    try:
        async with db.engine.connect() as conn:
            stmt = select(func.count()).select_from(model)
            for key, value in where.items():
                stmt = stmt.where(getattr(model, key) == value)
            return int(await conn.scalar(stmt) or 0)
    finally:
        await db.dispose()


async def test_a_member_copies_in_and_out_under_row_level_security(
        team, parley_home: Path) -> None:
    db, owner, alice, bob = team
    # bob was there first, with a collection he shares with everyone
    await populate(bob.url, second_user=False)
    shutil.copy(parley_home / "key", bob.home / "key")  # populate wrote under this key
    shared = bob.steps("collections", "share", "notes", "--all")
    assert shared.returncode == 0, shared.stderr
    su = await db.superuser()
    try:
        bob_id = await su.fetchval("SELECT id FROM users WHERE name = $1", bob.role)
        alice_id = await su.fetchval("SELECT id FROM users WHERE name = $1", alice.role)
        bob_messages = await su.fetchval("SELECT count(*) FROM messages")
        bob_max = await su.fetchval("SELECT max(id) FROM messages")

        # alice's laptop: an SQLite file of user "me" under the key she brings along
        laptop = f"sqlite:///{parley_home / 'laptop.db'}"
        await populate(laptop, second_user=False)
        shutil.copy(parley_home / "key", alice.home / "key")
        pulled = alice.steps("db", "copy", "--from", laptop)
        assert pulled.returncode == 0, pulled.stderr
        assert "every table verified" in pulled.stderr

        # everything landed on alice's user, past bob's ids she cannot see
        assert await su.fetchval("SELECT count(*) FROM messages WHERE user_id = $1",
                                 alice_id) == 4
        assert await su.fetchval("SELECT min(id) FROM messages WHERE user_id = $1",
                                 alice_id) > bob_max
        assert await su.fetchval("SELECT count(*) FROM messages WHERE user_id = $1",
                                 bob_id) == bob_messages
        assert await su.fetchval("SELECT count(*) FROM users") == 3  # nobody new
        listed = alice.steps("sessions", "list", "--json")
        assert {s["title"] for s in json.loads(listed.stdout)} == {"Battery questions",
                                                                   "Empty one"}
        found = alice.steps("search", "battery warranty", "--collection", "notes", "--json")
        assert found.returncode == 0, found.stderr
        assert json.loads(found.stdout)["hits"]
        # her vector indexes were made through the checked function
        assert await su.fetchval("SELECT count(*) FROM pg_indexes WHERE indexname LIKE "
                                 "'ix_vec_c%'") == 6
        # run again: nothing to do, nothing duplicated
        again = alice.steps("db", "copy", "--from", laptop)
        assert again.returncode == 0, again.stderr
        assert await su.fetchval("SELECT count(*) FROM messages WHERE user_id = $1",
                                 alice_id) == 4

        # the owner's switch gives a member nothing
        conn = await alice.sql()
        try:
            await conn.execute("SELECT set_config('parley.copy_all', 'on', false)")
            assert await conn.fetchval("SELECT count(*) FROM messages") == 4
            assert not await conn.fetchval("SELECT parley_copy_all()")
        finally:
            await conn.close()

        # alice cites bob's shared collection in one of her answers
        cited = await su.fetchrow(
            "SELECT c.id, d.id AS document_id FROM chunks c JOIN documents d ON "
            "d.chunk_set_id = c.chunk_set_id WHERE d.user_id = $1 AND d.collection_id = "
            "(SELECT id FROM collections WHERE user_id = $1 AND name = 'notes') LIMIT 1",
            bob_id)
        answer = await su.fetchval("SELECT id FROM messages WHERE user_id = $1 AND role = "
                                   "'assistant' ORDER BY id LIMIT 1", alice_id)
        conn = await alice.sql()
        try:
            await conn.execute(
                "INSERT INTO citations (user_id, message_id, chunk_id, document_id, marker, "
                "path, snippet) VALUES ($1, $2, $3, $4, 9, '/bob/handbook.md', 'gAAAA-x')",
                alice_id, answer, cited["id"], cited["document_id"])
        finally:
            await conn.close()

        checked = alice.steps("db", "check")
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert f"only the data of '{alice.role}'" in checked.stdout

        # out again: only alice's own rows
        out = f"sqlite:///{parley_home / 'alice-out.db'}"
        pushed = alice.steps("db", "copy", "--to", out)
        assert pushed.returncode == 0, pushed.stderr
        assert await _rows(out, m.User) == 1
        assert await _rows(out, m.Message) == 4
        assert await _rows(out, m.Collection) == 2  # hers; bob's shared one stays behind
        assert await _rows(out, m.Chunk, user_id=bob_id) == 0
        assert await _rows(out, m.Citation, marker=9) == 1
        assert await _rows(out, m.Citation, chunk_id=cited["id"]) == 0  # link cleared
        mine = cli("sessions", "list", "--json", url=out)  # her data is the file's user's
        assert {s["title"] for s in json.loads(mine.stdout)} == {"Battery questions",
                                                                 "Empty one"}

        # a member refused, as a process: exit code and message as the member meets them
        refused = alice.cli("db", "copy", "--to", f"sqlite:///{parley_home / 'x.db'}",
                            "--only-user", bob.role)
        assert refused.returncode == 1
        assert "only your own data" in refused.stderr
        assert not (parley_home / "x.db").exists() or await _rows(
            f"sqlite:///{parley_home / 'x.db'}", m.Message) == 0
    finally:
        await su.close()


async def test_the_owner_copies_everyone_and_backups_follow_the_role(
        team, postgres_server: PostgresServer, parley_home: Path, tmp_path: Path) -> None:
    db, owner, alice, bob = team
    await populate(alice.url, second_user=False)
    await populate(bob.url, second_user=False)
    su = await db.superuser()
    try:
        messages = await su.fetchval("SELECT count(*) FROM messages")
        assert messages == 8
    finally:
        await su.close()

    # the owner using Parley is held to the policies; only a session that asks sees all
    conn = await owner.sql()
    try:
        assert await conn.fetchval("SELECT count(*) FROM messages") == 0
        await conn.execute("SELECT set_config('parley.copy_all', 'on', false)")
        assert await conn.fetchval("SELECT count(*) FROM messages") == 8
    finally:
        await conn.close()

    everyone = f"sqlite:///{parley_home / 'everyone.db'}"
    out = owner.steps("db", "copy", "--to", everyone)
    assert out.returncode == 0, out.stderr
    assert "every user's data" in out.stderr
    assert await _rows(everyone, m.Message) == 8
    assert await _rows(everyone, m.User) == 3

    # into another team's database, whose tables FORCE row-level security too
    other = TeamDatabase(postgres_server.admin_url, tmp_path / "other")
    (tmp_path / "other").mkdir()
    owner2 = await other.create()
    try:
        assert owner2.steps("db", "upgrade").returncode == 0
        moved = owner2.steps("db", "copy", "--from", everyone)
        assert moved.returncode == 0, moved.stderr
        assert "every table verified" in moved.stderr
        su2 = await other.superuser()
        try:
            assert await su2.fetchval("SELECT count(*) FROM messages") == 8
            forced = await su2.fetchval("SELECT bool_and(relforcerowsecurity) FROM pg_class "
                                        "WHERE relname IN ('messages', 'chunks', 'sessions')")
            assert forced
        finally:
            await su2.close()
        theirs = await table_digests(everyone)
        back = f"sqlite:///{parley_home / 'back.db'}"
        assert owner2.steps("db", "copy", "--to", back).returncode == 0
        digests = await table_digests(back)
        for table in ("messages", "chunks", "chunk_embeddings", "citations", "sessions"):
            assert digests[table] == theirs[table], table
    finally:
        await other.drop()

    # a member's backup holds their data; the owner's holds everyone's
    for person, users in ((alice, 1), (owner, 3)):
        path = tmp_path / f"{person.role}.parley-backup"
        made = person.steps("backup", str(path), "--json")
        assert made.returncode == 0, made.stderr
        with tarfile.open(path) as tar:
            member = tar.extractfile("manifest.json")
            assert member is not None
            manifest = json.loads(member.read())
        assert manifest["tables"]["users"] == users
        assert manifest["tables"]["messages"] == (4 if users == 1 else 8)
