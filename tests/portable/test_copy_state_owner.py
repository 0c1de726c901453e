"""A copy's progress belongs to who ran it: on a PostgreSQL team a member's copy state and
id map are theirs alone (row-level security, migration ``0011_copy_state_owner``), and a
member's copy killed with SIGKILL resumes from their own state and finishes."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import asyncpg
import pytest

from tests.portable.support import cli, populate, real_cli
from tests.portable.test_copy_kill import _big_source, _run_and_kill
from tests.portable.test_copy_teams import team  # noqa: F401  (the fixture)
from tests.teams.support import Person


def _ok(out) -> str:  # type: ignore[no-untyped-def]
    assert out.returncode == 0, out.stdout + out.stderr
    return str(out.stderr)


async def _laptop(path: Path) -> str:
    url = f"sqlite:///{path}"
    await populate(url, second_user=False)
    return url


async def test_a_member_cannot_see_or_touch_another_members_copy_state(
        team, parley_home: Path) -> None:  # noqa: F811
    db, owner, alice, bob = team
    # each member copies a laptop's SQLite file in (the key of the test's PARLEY_HOME)
    for person, name in ((alice, "a.db"), (bob, "b.db")):
        laptop = await _laptop(parley_home / name)
        _ok(cli("db", "copy", "--to", person.url, url=laptop))
    su = await db.superuser()
    try:
        ids = {p.role: await su.fetchval("SELECT id FROM users WHERE name = $1", p.role)
               for p in (alice, bob)}
        before = {t: await su.fetch(f"SELECT * FROM {t} ORDER BY 1, 2, 3")
                  for t in ("parley_copy_state", "parley_copy_map")}
        for table, rows in before.items():
            # every row names who ran its copy; both members have rows of both kinds
            assert {r["user_id"] for r in rows} == set(ids.values()), table
    finally:
        await su.close()

    for me, other in ((alice, bob), (bob, alice)):
        theirs = ids[other.role]
        conn = await me.sql()
        try:
            # the owner's switch gives a member nothing here either
            await conn.execute("SELECT set_config('parley.copy_all', 'on', false)")
            for table in ("parley_copy_state", "parley_copy_map"):
                seen = await conn.fetch(f"SELECT user_id FROM {table}")
                assert seen and {r["user_id"] for r in seen} == {ids[me.role]}, table
                assert await conn.fetchval(
                    f"SELECT count(*) FROM {table} WHERE user_id = $1", theirs) == 0
                assert await conn.execute(
                    f"UPDATE {table} SET copy_id = 'stolen' WHERE user_id = $1",
                    theirs) == "UPDATE 0"
                assert await conn.execute(
                    f"DELETE FROM {table} WHERE user_id = $1", theirs) == "DELETE 0"
                # nor hand one's own rows to someone else (the policy's WITH CHECK)
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.execute(f"UPDATE {table} SET user_id = $1", theirs)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO parley_copy_state (copy_id, table_name, id_offset, copied, "
                    "skipped, done, updated_at, user_id) VALUES ('x', 'users', 0, 0, 0, "
                    "false, now(), $1)", theirs)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):  # nor as nobody's
                await conn.execute(
                    "INSERT INTO parley_copy_map (copy_id, table_name, old_id, new_id, "
                    "user_id) VALUES ('x', 'users', 1, 1, NULL)")
        finally:
            await conn.close()

    su = await db.superuser()
    try:
        for table, rows in before.items():  # nothing of anyone's changed
            assert await su.fetch(f"SELECT * FROM {table} ORDER BY 1, 2, 3") == rows, table
    finally:
        await su.close()
    # and each member's own state still works: a rerun has nothing to do
    for person, name in ((alice, "a.db"), (bob, "b.db")):
        again = cli("db", "copy", "--to", person.url, "--json",
                    url=f"sqlite:///{parley_home / name}")
        _ok(again)
        assert json.loads(again.stdout)["resumed"] and json.loads(again.stdout)["new_rows"] == 0


async def test_a_members_copy_killed_midway_resumes_from_their_own_state(
        team, parley_home: Path) -> None:  # noqa: F811
    db, owner, alice, bob = team
    await populate(bob.url, second_user=False)  # someone else's rows are there first
    laptop = f"sqlite:///{parley_home / 'laptop.db'}"
    await _big_source(laptop, second_user=False)
    shutil.copy(parley_home / "key", alice.home / "key")  # the laptop's key comes along
    su = await db.superuser()
    try:
        bob_rows = await su.fetch("SELECT * FROM messages ORDER BY id")
        alice_id = await su.fetchval("SELECT id FROM users WHERE name = $1", alice.role)
        # early, then in the middle of the messages; the helper reads progress as alice
        for at_least in (1, 700):
            await _run_and_kill(laptop, alice.url, at_least)
        assert await su.fetchval("SELECT count(*) FROM parley_copy_state WHERE user_id "
                                 "IS DISTINCT FROM $1", alice_id) == 0
        # the resume after the kills is a new process, as it is for a user
        done = _ok(real_cli("db", "copy", "--to", alice.url, url=laptop))
        assert "(resumed)" in done and "every table verified" in done
        source_messages = 4 + 1500
        assert await su.fetchval("SELECT count(*) FROM messages WHERE user_id = $1",
                                 alice_id) == source_messages
        assert await su.fetch("SELECT * FROM messages WHERE user_id <> $1 ORDER BY id",
                              alice_id) == bob_rows
    finally:
        await su.close()
    listed = json.loads(_ok_out(alice, "sessions", "list", "--json"))
    assert {s["title"] for s in listed} == {"Battery questions", "Empty one", "long"}


def _ok_out(person: Person, *args: str) -> str:
    out = person.steps(*args)
    assert out.returncode == 0, out.stderr
    return out.stdout


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
async def test_existing_copy_state_migrates_and_downgrades(kind: str, parley_home: Path,
                                                          request: pytest.FixtureRequest
                                                          ) -> None:
    """Rows written before ``0011_copy_state_owner`` go to the schema owner's user on
    PostgreSQL (to nobody on SQLite); downgrading drops the column and keeps the rows."""
    from sqlalchemy import text

    from engine import Engine
    from tests.portable.support import settings_for

    if kind == "sqlite":
        url = f"sqlite:///{parley_home / 'old.db'}"
        owner, cleanup = None, None
    else:
        from tests.teams.support import TeamDatabase

        cleanup = TeamDatabase(request.getfixturevalue("postgres_server").admin_url,
                               parley_home)
        owner = await cleanup.create()
        url = owner.url
    try:
        async with Engine(settings_for(url), migrate=False) as engine:
            await engine.upgrade("0008_copy_state")
            assert engine.db is not None
            async with engine.db.engine.begin() as conn:
                uid = (await conn.execute(text(
                    "INSERT INTO users (name, created_at) VALUES (:n, CURRENT_TIMESTAMP) "
                    "RETURNING id"), {"n": owner.role if owner else "me"})).scalar_one()
                await conn.execute(text(
                    "INSERT INTO parley_copy_state (copy_id, table_name, id_offset, copied, "
                    "skipped, done, updated_at) VALUES ('old', 'users', 0, 1, 0, false, "
                    "CURRENT_TIMESTAMP)"))
                await conn.execute(text("INSERT INTO parley_copy_map VALUES "
                                        "('old', 'users', 1, 2)"))
            await engine.upgrade()
            async with engine.db.engine.connect() as conn:
                if owner is not None:  # as the owner, held to the policies: its copy
                    await conn.execute(text("SELECT set_config('parley.copy_all', 'on', "
                                            "false)"))
                for table in ("parley_copy_state", "parley_copy_map"):
                    got = (await conn.execute(text(f"SELECT copy_id, user_id FROM {table}"))
                           ).all()
                    assert got == [("old", uid if owner else None)], table
            await engine.downgrade("0008_copy_state")
            async with engine.db.engine.connect() as conn:
                for table in ("parley_copy_state", "parley_copy_map"):
                    row = (await conn.execute(text(f"SELECT * FROM {table}"))).mappings().one()
                    assert "user_id" not in row and row["copy_id"] == "old"
            await engine.upgrade()
    finally:
        if cleanup is not None:
            await cleanup.drop()
