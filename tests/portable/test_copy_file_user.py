"""Out of a PostgreSQL team into SQLite: a member's own data lands on the file's own user
(the name ``parley --db FILE`` opens as), so sessions, search, ask and the key check work
there with the same key and no ``--user``; the owner's copy of the whole team keeps every
user apart under their role names, each opening with ``--user ROLE``."""

from __future__ import annotations

import getpass
import json
import shutil
from pathlib import Path

from engine.db import models as m
from tests.portable.support import populate
from tests.portable.test_copy_teams import _rows, team  # noqa: F401  (team: the fixture)
from tests.teams.support import Person


def _out(result) -> str:  # type: ignore[no-untyped-def]
    assert result.returncode == 0, result.stdout + result.stderr
    return str(result.stdout)


def _titles(person: Person, *args: str) -> set[str]:
    return {s["title"] for s in json.loads(_out(person.steps(*args, "sessions", "list",
                                                           "--json")))}


async def test_a_members_copy_opens_as_the_files_own_user(team, parley_home: Path
                                                          ) -> None:  # noqa: F811
    db, owner, alice, bob = team
    await populate(alice.url, second_user=False)  # under the key in the test's home
    shutil.copy(parley_home / "key", alice.home / "key")
    await populate(bob.url, second_user=False)
    out = parley_home / "alice-laptop.db"
    pushed = alice.steps("db", "copy", "--to", f"sqlite:///{out}")
    assert pushed.returncode == 0, pushed.stderr
    local = getpass.getuser()  # what `user:` defaults to: nothing sets it here
    assert f"user '{alice.role}' lands on '{local}'" in pushed.stderr

    # the same person, same key and configuration, now on the file: no --user needed
    laptop = Person(local, f"sqlite:///{out}", alice.home)
    assert _titles(laptop) == {"Battery questions", "Empty one"}
    found = json.loads(_out(laptop.steps("search", "battery warranty", "--collection", "notes",
                                       "--json")))
    assert found["hits"] and found["hits"][0]["path"] == "/manuals/warranty.pdf"
    asked = json.loads(_out(laptop.steps("ask", "--json", "--new", "--collection", "notes",
                                       "How long is the warranty?")))
    assert asked["citations"]
    checked = laptop.steps("db", "check")
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"user '{local}': the key check value opens" in checked.stdout
    assert await _rows(f"sqlite:///{out}", m.User) == 1
    # bob's data never left the team database
    assert _titles(laptop, "--user", bob.role) == set()


async def test_the_owners_whole_team_copy_keeps_every_user_apart(team, parley_home: Path
                                                                 ) -> None:  # noqa: F811
    db, owner, alice, bob = team
    for person in (alice, bob):
        await populate(person.url, second_user=False)
        shutil.copy(parley_home / "key", person.home / "key")
        _out(person.steps("ask", "--new", "--no-rag", f"a question only {person.role} asked"))
    out = parley_home / "team.db"
    copied = owner.steps("db", "copy", "--to", f"sqlite:///{out}")
    assert copied.returncode == 0, copied.stderr
    assert "lands on" not in copied.stderr
    assert "users keep their role names there" in copied.stderr

    for me, other in ((alice, bob), (bob, alice)):
        on_file = Person(me.role, f"sqlite:///{out}", me.home)
        mine = _titles(on_file, "--user", me.role)
        assert {"Battery questions", "Empty one"} <= mine and len(mine) == 3
        assert not any(other.role in t for t in mine)
        found = json.loads(_out(on_file.steps("--user", me.role, "search", "warranty",
                                            "--collection", "notes", "--json")))
        assert found["hits"]
    # nobody's data shows up as the file's default user
    assert _titles(Person("x", f"sqlite:///{out}", alice.home)) == set()
