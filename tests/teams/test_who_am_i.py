"""Who Parley says you are: ``parley config show`` and ``parley db current`` name the role the
connection logs in as on PostgreSQL (text and ``--json``), even when a ``user:`` setting
disagrees with it (config show is where one looks to find out why); on SQLite the ``user``
setting is who you are and no role is shown."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.conftest import PostgresServer
from tests.engine.test_keyword_index import parley
from tests.teams.support import Person, TeamDatabase


@pytest.fixture
async def member(postgres_server: PostgresServer, parley_home: Path,
                 tmp_path: Path) -> AsyncIterator[Person]:
    """A migrated team database and one member (not its owner)."""
    db = TeamDatabase(postgres_server.admin_url, tmp_path)
    owner = await db.create()
    try:
        assert owner.cli("db", "upgrade").returncode == 0
        alice = db.person(db.role("alice"))
        added = owner.cli("team", "add", alice.role, "--create")
        assert added.returncode == 0, added.stderr
        yield alice
    finally:
        await db.drop()


async def test_config_show_and_db_current_name_the_members_role(member: Person) -> None:
    shown = member.cli("config", "show", "--json")
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["database_role"] == member.role
    assert data["keyword_search"]["method"] == "sql-bm25"
    text = member.cli("config", "show")
    assert f"# database role: {member.role} " in text.stdout

    current = member.cli("db", "current", "--json")
    assert current.returncode == 0, current.stderr
    state = json.loads(current.stdout)
    assert (state["role"], state["user"]) == (member.role, member.role)
    assert state["keyword_search"]["method"] == "sql-bm25"
    lines = member.cli("db", "current").stdout.splitlines()
    assert f"user:     {member.role} (the database role you connect as)" in lines
    assert any(line.startswith("keyword:  exact BM25 in SQL") for line in lines)


async def test_a_user_setting_naming_someone_else_still_shows_the_role(member: Person) -> None:
    config = {"user": "somebody_else"}
    shown = member.cli("config", "show", "--json", config=config)
    assert shown.returncode == 0, shown.stderr
    data = json.loads(shown.stdout)
    assert data["database_role"] == member.role
    assert data["settings"]["user"] == {"value": "somebody_else", "source": "file"}
    # every other command refuses the disagreement, naming both
    current = member.cli("db", "current", "--json", config=config)
    assert current.returncode == 2
    assert "somebody_else" in current.stderr and member.role in current.stderr
    assert current.stdout == ""


def test_sqlite_shows_the_user_setting_and_no_role(tmp_path: Path, parley_home: Path) -> None:
    url = f"sqlite:///{tmp_path / 'parley.db'}"
    shown = parley(url, "config", "show", "--json", home=parley_home)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["database_role"] is None
    assert "# database role" not in parley(url, "config", "show", home=parley_home).stdout
    current = parley(url, "db", "current", "--json", home=parley_home)
    assert current.returncode == 0, current.stderr
    state = json.loads(current.stdout)
    assert state["role"] is None and state["user"]
    text = parley(url, "db", "current", home=parley_home).stdout
    assert f"user:     {state['user']} (the user setting: SQLite has one user)" in text
