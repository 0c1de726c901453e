"""The command line: help, version, db and config commands, and errors that change nothing."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import asyncpg
import pytest

from engine import Settings
from tests.conftest import PostgresServer
from tests.support.cli import REPO, real_cli, run_cli

def parley(*args: str, home: Path, env: dict[str, str] | None = None,
           stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess: for what a user meets as a process (exit codes of
    errors, a broken config)."""
    return real_cli(*args, home=home, env=env, stdin=stdin, timeout=120)


def steps(*args: str, home: Path, env: dict[str, str] | None = None,
          stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    """The same command run in this process: for the steps of a scenario."""
    return run_cli(*args, home=home, env=env, stdin=stdin, timeout=120)


def digest(*paths: Path) -> list[str]:
    return [hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "-" for p in paths]


def test_help_and_version(parley_home: Path) -> None:
    result = parley("--help", home=parley_home)
    assert result.returncode == 0
    for command in ("db", "config"):
        assert command in result.stdout
    assert "Exit codes" in result.stdout
    version = parley("--version", home=parley_home)
    assert version.returncode == 0 and "0.1.0" in version.stdout


def test_importing_the_cli_does_not_import_textual_or_the_engine() -> None:
    code = ("import sys, tui.cli.main; "
            "print(sorted(m for m in ('textual', 'sqlalchemy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


def test_db_upgrade_creates_wal_sqlite_with_vec_and_fts(parley_home: Path) -> None:
    result = parley("db", "upgrade", home=parley_home)
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # messages go to stderr
    import sqlean

    conn = sqlean.connect(str(parley_home / "parley.db"))
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    names = {r[0] for r in conn.execute("SELECT name FROM sqlite_master")}
    assert "chunk_fts" in names
    current = steps("db", "current", "--json", home=parley_home)
    assert json.loads(current.stdout)["up_to_date"] is True


def test_config_show_json_names_sources(parley_home: Path) -> None:
    (parley_home / "config.yaml").write_text("retrieval:\n  top_k: 3\n")
    result = steps("config", "show", "--json", home=parley_home,
                   env={"PARLEY_CHAT__RAG": "false"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["settings"]["retrieval.top_k"] == {"value": 3, "source": "file"}
    assert data["settings"]["chat.rag"] == {"value": False, "source": "env"}
    assert data["settings"]["retrieval.candidates"]["source"] == "default"
    text = steps("config", "show", home=parley_home)
    assert "retrieval.top_k" in text.stdout and "[file]" in text.stdout


@pytest.mark.parametrize(("config", "env", "fragment"), [
    ("chat:\n  modle: x\n", {}, "unknown config key 'chat.modle'"),
    ("retrieval: [\n", {}, "at line"),
    ("", {"PARLEY_RETRIEVAL__TOP_K": "-1"}, "retrieval.top_k"),
])
def test_bad_config_is_one_line_exit_2_and_no_database(parley_home: Path, config: str,
                                                       env: dict[str, str],
                                                       fragment: str) -> None:
    (parley_home / "config.yaml").write_text(config)
    for args in (("db", "upgrade"), ("config", "show")):
        result = parley(*args, home=parley_home, env=env)
        assert result.returncode == 2
        assert fragment in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
        assert result.stdout == ""
    assert not (parley_home / "parley.db").exists()


@pytest.mark.parametrize("url", ["mysql://u:p@localhost/x", "not a url at all"])
def test_unsupported_database_url_is_a_config_error(parley_home: Path, url: str) -> None:
    result = parley("--db", url, "db", "current", home=parley_home)
    assert result.returncode == 2
    assert "database" in result.stderr.lower()
    assert len(result.stderr.strip().splitlines()) == 1


def test_unreachable_postgres(parley_home: Path) -> None:
    result = parley("--db", "postgresql+asyncpg://u:secret@127.0.0.1:1/nowhere", "db", "current",
                    home=parley_home)
    assert result.returncode == 1
    assert "cannot connect" in result.stderr and "secret" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_file_that_is_not_sqlite_is_left_alone(parley_home: Path) -> None:
    victim = parley_home / "notes.db"
    victim.write_bytes(b"these are my notes, not a database\n" * 100)
    before = digest(victim)
    for args in (("db", "current"), ("db", "upgrade")):
        result = parley("--db", f"sqlite:///{victim}", *args, home=parley_home)
        assert result.returncode == 1
        assert "not an SQLite database" in result.stderr
    assert digest(victim) == before
    assert not victim.with_name("notes.db-wal").exists()


def test_a_database_from_a_newer_version_is_refused(parley_home: Path) -> None:
    assert steps("db", "upgrade", home=parley_home).returncode == 0
    db = parley_home / "parley.db"
    import sqlean

    conn = sqlean.connect(str(db))
    conn.execute("UPDATE alembic_version SET version_num = 'ffff9999'")
    conn.commit()
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    before = digest(db)
    result = parley("db", "upgrade", home=parley_home)
    assert result.returncode == 1
    assert "newer version of Parley" in result.stderr
    assert digest(db) == before


async def test_postgres_without_the_vector_extension(postgres_server: PostgresServer,
                                                     parley_home: Path) -> None:
    """A role that cannot create the extension gets the fix, and nothing is created."""
    name = await postgres_server.create_database()
    admin = await asyncpg.connect(postgres_server._asyncpg_url(name))
    try:
        await admin.execute("CREATE ROLE plain_user LOGIN PASSWORD 'pw'")
        await admin.execute(f'REVOKE CREATE ON DATABASE "{name}" FROM PUBLIC')
        await admin.execute("GRANT CREATE, USAGE ON SCHEMA public TO plain_user")
        url = postgres_server.sqlalchemy_url(name).replace("postgres:@", "plain_user:pw@")
        result = parley("--db", url, "db", "upgrade", home=parley_home)
        assert result.returncode == 1, result.stderr
        assert "pgvector" in result.stderr and "CREATE EXTENSION vector" in result.stderr
        tables = await admin.fetch("SELECT tablename FROM pg_tables WHERE schemaname='public'")
        assert tables == []
    finally:
        await admin.close()
        await postgres_server.drop_database(name)
        cleanup = await asyncpg.connect(postgres_server._asyncpg_url("postgres"))
        await cleanup.execute("DROP ROLE IF EXISTS plain_user")
        await cleanup.close()


def test_db_commands_on_postgres(settings: Settings, parley_home: Path, backend: str) -> None:
    url = settings.database_url()
    up = steps("--db", url, "db", "upgrade", "--json", home=parley_home)
    assert up.returncode == 0, up.stderr
    assert json.loads(up.stdout)["to"] is not None
    down = steps("--db", url, "db", "downgrade", "base", "--yes", home=parley_home)
    assert down.returncode == 0, down.stderr
    current = steps("--db", url, "db", "current", "--json", home=parley_home)
    assert json.loads(current.stdout)["current"] is None
