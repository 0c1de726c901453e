"""``parley sessions`` and ``parley key`` from the command line, and the key problems a user
meets there: one line on stderr, exit 1, and the database left exactly as it was."""

from __future__ import annotations

import asyncio
import hashlib
import json
import stat
import subprocess
from pathlib import Path

import asyncpg
import pytest
import sqlean
from click.testing import CliRunner, Result
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url

from engine import Settings
from tests.support.cli import real_cli, run_cli
from tui.cli.main import cli

WHEN = "2025-05-01T10:00:00+00:00"
SEED = {
    "format": "parley-session", "version": 1,
    "session": {"title": "Lisbon trip", "model": "llama3", "system_prompt": "Be brief.",
                "created_at": WHEN, "updated_at": WHEN, "current": 3},
    "messages": [
        {"id": 1, "role": "user", "content": "Where in May?", "created_at": WHEN},
        {"id": 2, "parent": 1, "role": "assistant", "content": "Porto.", "created_at": WHEN},
        {"id": 3, "parent": 1, "role": "assistant", "content": "Lisbon [1].",
         "status": "interrupted", "created_at": WHEN, "model": "llama3",
         "citations": [{"marker": 1, "path": "guide.pdf", "page": 4, "line_start": 2,
                        "line_end": 5, "snippet": "Lisbon in spring"}]},
    ],
}


def invoke(settings: Settings, *args: str, stdin: str | None = None) -> Result:
    return CliRunner().invoke(cli, ["--db", settings.database_url(), *args], input=stdin)


def parley(settings: Settings, home: Path, *args: str, env: dict[str, str] | None = None,
           real: bool = True) -> subprocess.CompletedProcess[str]:
    """The real command in a subprocess (or, with ``real=False``, the same in-process) with
    a clean environment: only PARLEY_HOME and ``env``."""
    return (real_cli if real else run_cli)("--db", settings.database_url(), *args, home=home,
                                           env=env, timeout=120)


def _pg_dsn(settings: Settings) -> str:
    return make_url(settings.database_url()).set(drivername="postgresql") \
        .render_as_string(hide_password=False)


async def _pg(settings: Settings, statement: str, fetch: bool = False) -> list[str]:
    conn = await asyncpg.connect(_pg_dsn(settings))
    try:
        if not fetch:
            await conn.execute(statement)
            return []
        return [str(tuple(r)) for r in await conn.fetch(statement)]
    finally:
        await conn.close()


def snapshot(settings: Settings, backend: str) -> list[str]:
    """The stored bytes (SQLite file and WAL) or every stored row (PostgreSQL)."""
    if backend == "sqlite":
        db = Path(make_url(settings.database_url()).database or "")
        return [hashlib.sha256(p.read_bytes()).hexdigest() if p.exists() else "-"
                for p in (db, db.with_name(db.name + "-wal"))]
    tables = asyncio.run(_pg(settings, "SELECT tablename FROM pg_tables WHERE "
                                       "schemaname = 'public' ORDER BY 1", fetch=True))
    rows: list[str] = []
    for table in tables:
        name = table.strip("(),'")
        rows += sorted(asyncio.run(_pg(settings, f'SELECT t::text FROM "{name}" t', fetch=True)))
    return rows


def execute(settings: Settings, backend: str, statement: str) -> None:
    if backend == "sqlite":
        conn = sqlean.connect(make_url(settings.database_url()).database)
        conn.execute(statement)
        conn.commit()
        conn.close()
    else:
        asyncio.run(_pg(settings, statement))


def seed(settings: Settings, tmp_path: Path) -> int:
    assert invoke(settings, "db", "upgrade").exit_code == 0
    path = tmp_path / "seed.json"
    path.write_text(json.dumps(SEED))
    result = invoke(settings, "sessions", "import", str(path))
    assert result.exit_code == 0, result.stderr
    return int(result.stdout)


def test_sessions_commands(settings: Settings, tmp_path: Path) -> None:
    session_id = seed(settings, tmp_path)
    listed = json.loads(invoke(settings, "sessions", "list", "--json").stdout)
    assert [(s["id"], s["title"], s["model"], s["message_count"]) for s in listed] == \
        [(session_id, "Lisbon trip", "llama3", 3)]
    assert listed[0]["updated_at"].startswith("2025-05-01T10:00")
    assert "Lisbon trip" in invoke(settings, "sessions", "list").stdout
    shown = json.loads(invoke(settings, "sessions", "show", str(session_id), "--json").stdout)
    assert [(x["role"], x["status"]) for x in shown["messages"]] == \
        [("user", "complete"), ("assistant", "interrupted")]
    assert shown["messages"][1]["citations"][0]["snippet"] == "Lisbon in spring"
    text = invoke(settings, "sessions", "show", str(session_id)).stdout
    assert "[1] guide.pdf, p. 4, lines 2-5" in text and "Porto." not in text
    every = invoke(settings, "sessions", "show", str(session_id), "--all-branches").stdout
    assert "Porto." in every
    found = json.loads(invoke(settings, "sessions", "search", "LISBON", "--json").stdout)
    assert [(h["message_id"] is None, h["role"]) for h in found["hits"]] == \
        [(True, None), (False, "assistant")]
    assert invoke(settings, "sessions", "rename", str(session_id), "Porto trip").exit_code == 0
    assert invoke(settings, "sessions", "archive", str(session_id)).exit_code == 0
    assert json.loads(invoke(settings, "sessions", "list", "--json").stdout) == []
    archived = json.loads(invoke(settings, "sessions", "list", "--all", "--json").stdout)
    assert [(s["title"], s["archived"]) for s in archived] == [("Porto trip", True)]


def test_export_import_and_delete(settings: Settings, tmp_path: Path) -> None:
    session_id = seed(settings, tmp_path)
    out = tmp_path / "export.json"
    exported = invoke(settings, "sessions", "export", str(session_id), "-o", str(out))
    assert exported.exit_code == 0 and exported.stdout == ""
    assert stat.S_IMODE(out.stat().st_mode) == 0o600  # plaintext: owner only
    copy = invoke(settings, "sessions", "import", str(out), "--json")
    copy_id = json.loads(copy.stdout)["session"]["id"]
    again = invoke(settings, "sessions", "export", str(copy_id), "--format", "json")
    assert again.stdout == out.read_text()
    md = invoke(settings, "sessions", "export", str(session_id), "--format", "md").stdout
    assert md.startswith("# Lisbon trip") and "Lisbon [1]." in md
    refused = invoke(settings, "sessions", "delete", str(session_id), stdin="n\n")
    assert refused.exit_code == 1 and "not deleted" in refused.stderr
    assert invoke(settings, "sessions", "show", str(session_id)).exit_code == 0
    deleted = invoke(settings, "sessions", "delete", str(session_id), stdin="y\n")
    assert deleted.exit_code == 0 and "3 messages, 1 citations" in deleted.stderr
    missing = invoke(settings, "sessions", "show", str(session_id))
    assert missing.exit_code == 1 and f"no session with id {session_id}" in missing.stderr
    assert invoke(settings, "sessions", "delete", str(copy_id), "--yes").exit_code == 0
    assert json.loads(invoke(settings, "sessions", "list", "--json").stdout) == []


@pytest.mark.parametrize(("content", "fragment"), [
    ("{", "is not valid JSON"),
    (json.dumps({**SEED, "version": 7}), "version"),
    (json.dumps({**SEED, "messages": [{**SEED["messages"][0], "role": "bot"}]}),
     "messages[0].role"),
])
def test_a_malformed_import_writes_nothing(settings: Settings, tmp_path: Path, backend: str,
                                           content: str, fragment: str) -> None:
    seed(settings, tmp_path)
    before = snapshot(settings, backend)
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    result = invoke(settings, "sessions", "import", str(bad))
    assert result.exit_code == 1 and result.stdout == ""
    assert fragment in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert snapshot(settings, backend) == before
    missing = invoke(settings, "sessions", "import", str(tmp_path / "nowhere.json"))
    assert missing.exit_code == 2 and "cannot read" in missing.stderr


@pytest.mark.parametrize("problem", ["wrong key", "wrong passphrase", "missing key file",
                                     "loose permissions"])
def test_key_problems_change_nothing(settings: Settings, tmp_path: Path, parley_home: Path,
                                     backend: str, problem: str) -> None:
    seed(settings, tmp_path)
    key_file = settings.key_file_path()
    env: dict[str, str] = {}
    if problem == "wrong key":
        env["PARLEY_KEY"] = Fernet.generate_key().decode()
    elif problem == "wrong passphrase":
        env["PARLEY_KEY"] = "not the passphrase"
    elif problem == "missing key file":
        key_file.rename(tmp_path / "key.backup")
    else:
        key_file.chmod(0o640)
    before = snapshot(settings, backend)
    expected = {"wrong key": "does not match this database",
                "wrong passphrase": "does not match this database",
                "missing key file": "no encryption key found",
                "loose permissions": "can be read by other users"}[problem]
    # every problem through the real command once; the wrong key through each command
    for args in (("sessions", "show", "1"), ("key", "rotate")):
        result = parley(settings, parley_home, *args, env=env,
                        real=args[0] == "sessions" or problem == "wrong key")
        assert result.returncode == 1, (args, result.stderr)
        assert result.stdout == ""
        assert expected in result.stderr and len(result.stderr.strip().splitlines()) == 1
    status = parley(settings, parley_home, "key", "status", "--json", env=env,
                    real=problem == "wrong key")
    assert status.returncode == 1 and expected in json.loads(status.stdout)["problem"]
    assert snapshot(settings, backend) == before
    assert not key_file.exists() if problem == "missing key file" else key_file.exists()


def test_a_corrupted_value_spoils_only_itself(settings: Settings, tmp_path: Path,
                                              parley_home: Path, backend: str) -> None:
    session_id = seed(settings, tmp_path)
    shown = json.loads(invoke(settings, "sessions", "show", str(session_id), "--json").stdout)
    bad_id = shown["messages"][0]["id"]
    execute(settings, backend, f"UPDATE messages SET content = 'gAAAAAB' || content "
                               f"WHERE id = {bad_id}")
    before = snapshot(settings, backend)
    result = parley(settings, parley_home, "sessions", "show", str(session_id))
    assert result.returncode == 1
    assert "Lisbon [1]." in result.stdout and "[unreadable" in result.stdout
    assert f"message {bad_id} of session {session_id} cannot be decrypted" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    listed = parley(settings, parley_home, "sessions", "list", "--json", real=False)
    assert listed.returncode == 0 and json.loads(listed.stdout)[0]["title"] == "Lisbon trip"
    assert snapshot(settings, backend) == before


def test_key_status_and_rotate(settings: Settings, tmp_path: Path) -> None:
    seed(settings, tmp_path)
    status = json.loads(invoke(settings, "key", "status", "--json").stdout)
    assert status["matches"] and status["rotation"] is None
    assert status["encrypted_values"] == 6  # title, prompt, 3 messages, 1 snippet
    assert "messages.content" in status["encrypted_columns"]
    old = settings.key_file_path().read_text()
    rotated = invoke(settings, "key", "rotate", "--json")
    assert rotated.exit_code == 0, rotated.stderr
    assert json.loads(rotated.stdout)["rewritten"] == 6
    assert "back it up again" in rotated.stderr
    assert settings.key_file_path().read_text() != old
    text = invoke(settings, "key", "status").stdout
    assert "last rotated:" in text and "none unfinished" in text
    shown = json.loads(invoke(settings, "sessions", "show", "1", "--json").stdout)
    assert shown["messages"][-1]["content"] == "Lisbon [1]."
