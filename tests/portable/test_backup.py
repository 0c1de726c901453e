"""``parley backup`` / ``parley restore`` through the real command: bit-exact restores,
restores into PostgreSQL and from it, sealed archives, damaged archives refused with the
target unchanged, and a consistent snapshot while another process writes."""

from __future__ import annotations

import asyncio
import gzip
import json
import os
import subprocess
import sys
import tarfile
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.db import models as m
from engine.db.connect import Database, create_engine
from tests.conftest import PostgresServer, migrate
from tests.portable.support import (
    REPO,
    add_member,
    cli,
    populate,
    real_cli,
    role_name,
    settings_for,
    table_digests,
)


@pytest.fixture
async def pg_url(postgres_server: PostgresServer, parley_home: Path) -> object:
    name = await postgres_server.create_database()
    yield postgres_server.sqlalchemy_url(name)
    await postgres_server.drop_database(name)


async def test_backup_restores_bit_exact_and_into_postgres(parley_home: Path,
                                                           pg_url: str) -> None:
    source = f"sqlite:///{parley_home / 'live.db'}"
    await populate(source)
    original = await table_digests(source)  # the backup adds a line to the audit log
    archive = parley_home / "b.parley-backup"
    made = cli("backup", str(archive), "--json", url=source)
    assert made.returncode == 0, made.stderr
    result = json.loads(made.stdout)
    assert result["revision"] and result["rows"]["messages"] == 5
    assert archive.stat().st_mode & 0o077 == 0
    with tarfile.open(archive) as tar:  # a plain tar: tar tf / tar xf work on it
        assert tar.getnames() == ["manifest.json", "parley.db.gz", "SHA256SUM"]
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        payload = gzip.decompress(tar.extractfile("parley.db.gz").read())  # type: ignore[union-attr]
    assert manifest["payload"]["sha256"] == result["sha256"]
    assert manifest["tables"]["chunk_embeddings"] == 12

    restored = parley_home / "elsewhere" / "restored.db"
    out = cli("restore", str(archive), "--to", f"sqlite:///{restored}")
    assert out.returncode == 0, out.stderr
    assert restored.read_bytes() == payload  # bit-exact
    assert await table_digests(f"sqlite:///{restored}") == original

    into_pg = cli("restore", str(archive), "--to", pg_url)
    assert into_pg.returncode == 0, into_pg.stderr
    assert "every table verified" in into_pg.stderr
    assert await table_digests(pg_url) == original
    again = cli("restore", str(archive), "--to", pg_url)  # already done: refused politely
    assert again.returncode in (0, 1)
    assert await table_digests(pg_url) == original


async def _two_users(pg_url: str) -> str:
    """The superuser's data and a member's (bob, a role of his own); returns his name."""
    await migrate(settings_for(pg_url))
    bob = role_name("bob")
    await populate(pg_url, other_user=await add_member(pg_url, bob))
    return bob


async def test_postgres_backup_with_several_users(parley_home: Path, pg_url: str) -> None:
    bob = await _two_users(pg_url)
    before = await table_digests(pg_url)
    archive = parley_home / "pg.parley-backup"
    made = cli("backup", str(archive), "--encrypt", url=pg_url)
    assert made.returncode == 0, made.stderr
    assert archive.read_bytes().startswith(b"PARLEY-SEALED-BACKUP")
    target = f"sqlite:///{parley_home / 'from-pg.db'}"
    out = cli("restore", str(archive), "--to", target)
    assert out.returncode == 0, out.stderr
    assert await table_digests(target) == before
    listed = cli("--user", bob, "sessions", "list", "--json", url=target)
    assert json.loads(listed.stdout)[0]["title"] == "Bob's secrets"
    # the key that sealed it is the user's: without it the archive does not open
    other_home = parley_home / "stranger"
    other_home.mkdir()
    stranger = cli("restore", str(archive), "--to", f"sqlite:///{other_home / 'x.db'}",
                   env_extra={"PARLEY_HOME": str(other_home)})
    assert stranger.returncode == 1 and not (other_home / "x.db").exists()


def _flip(data: bytes, at: int) -> bytes:
    out = bytearray(data)
    out[at] ^= 0x10
    return bytes(out)


async def test_damaged_archives_are_refused_and_change_nothing(parley_home: Path) -> None:
    source = f"sqlite:///{parley_home / 'live.db'}"
    await populate(source, second_user=False)
    plain, sealed = parley_home / "plain.pb", parley_home / "sealed.pb"
    assert cli("backup", str(plain), url=source).returncode == 0
    env = {"BACKUP_PASS": "correct horse battery staple"}
    assert cli("backup", str(sealed), "--passphrase-env", "BACKUP_PASS", url=source,
               env_extra=env).returncode == 0
    existing = f"sqlite:///{parley_home / 'existing.db'}"
    await populate(existing, second_user=False)
    before = await table_digests(existing)
    fresh = parley_home / "fresh.db"
    bad = parley_home / "bad.pb"
    cases = {
        "truncated": (plain.read_bytes()[: plain.stat().st_size // 2], {}),
        "truncated sealed": (sealed.read_bytes()[:-40], env),
        "bit-flipped manifest": (_flip(plain.read_bytes(), 600), {}),
        "bit-flipped": (_flip(plain.read_bytes(), plain.stat().st_size // 2), {}),
        "bit-flipped padding": (_flip(plain.read_bytes(), plain.stat().st_size - 10), {}),
        "bit-flipped sealed": (_flip(sealed.read_bytes(), sealed.stat().st_size // 2), env),
        "wrong passphrase": (sealed.read_bytes(), {"BACKUP_PASS": "wrong"}),
        "not an archive": (b"hello", {}),
    }
    first = True
    for name, (data, extra) in cases.items():
        bad.write_bytes(data)
        pass_args = ["--passphrase-env", "BACKUP_PASS"] if extra else []
        for target, more in ((f"sqlite:///{fresh}", []), (existing, ["--merge"])):
            # the first refusal through the real process: exit code and the one line on
            # stderr as a user meets them; the others in this process
            run = real_cli if first else cli
            first = False
            out = run("restore", str(bad), "--to", target, *pass_args, *more, env_extra=extra)
            assert out.returncode == 1, (name, out.stderr)
            assert out.stderr.count("\n") == 1 and out.stderr.startswith("parley: error:"), \
                (name, out.stderr)
            assert not fresh.exists(), name
            assert await table_digests(existing) == before, name
    assert not [p for p in parley_home.iterdir() if p.name.startswith(".parley-restore-")]
    ok = cli("restore", str(sealed), "--to", f"sqlite:///{fresh}", "--passphrase-env",
             "BACKUP_PASS", env_extra=env)
    assert ok.returncode == 0, ok.stderr


async def _count(url: str, table: type) -> int:
    db = Database(create_engine(url))
    try:
        async with db.engine.connect() as conn:
            return int(await conn.scalar(select(func.count()).select_from(table)) or 0)
    finally:
        await db.dispose()


async def test_backup_while_another_process_writes(parley_home: Path) -> None:
    source = f"sqlite:///{parley_home / 'busy.db'}"
    await populate(source, second_user=False)
    base_messages = await _count(source, m.Message)
    base_usage = await _count(source, m.TokenUsage)
    stop = parley_home / "stop"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_HOME=os.environ["PARLEY_HOME"], PYTHONPATH=str(REPO))
    writer = subprocess.Popen([sys.executable, "-m", "tests.portable.writer", source, str(stop)],
                              cwd=REPO, env=env, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 120
        while await _count(source, m.Message) < base_messages + 20:
            assert writer.poll() is None, writer.stderr.read()  # type: ignore[union-attr]
            assert time.monotonic() < deadline
            await asyncio.sleep(0.05)
        archive = parley_home / "busy.pb"
        made = cli("backup", str(archive), "--json", url=source)
        assert made.returncode == 0, made.stderr
        rows = json.loads(made.stdout)["rows"]
        while await _count(source, m.Message) < rows["messages"] + 5:  # it kept writing
            assert writer.poll() is None
            await asyncio.sleep(0.05)
    finally:
        stop.touch()
        writer.wait(60)
    assert writer.returncode == 0
    # consistent: every message written has its usage row, none is half there
    assert rows["messages"] - base_messages == rows["token_usage"] - base_usage > 0
    restored = f"sqlite:///{parley_home / 'restored.db'}"
    assert cli("restore", str(archive), "--to", restored).returncode == 0
    assert await _count(restored, m.Message) == rows["messages"]
    check = cli("db", "check", url=restored)
    assert check.returncode == 0, check.stdout + check.stderr


async def test_one_users_backup(parley_home: Path, pg_url: str) -> None:
    bob = await _two_users(pg_url)
    archive = parley_home / "bob.parley-backup"
    made = cli("backup", str(archive), "--only-user", bob, "--json", url=pg_url)
    assert made.returncode == 0, made.stderr
    rows = json.loads(made.stdout)["rows"]
    assert rows["users"] == 1 and rows["messages"] == 1 and rows["chunks"] == 0
    # the first refusal of backup through the real process: exit 1, one line, no archive
    nobody = parley_home / "nobody.parley-backup"
    refused = real_cli("backup", str(nobody), "--only-user", "nobody", url=pg_url)
    assert refused.returncode == 1 and "no user named 'nobody'" in refused.stderr
    assert refused.stderr.startswith("parley: error:") and refused.stderr.count("\n") == 1
    assert not nobody.exists()
    target = f"sqlite:///{parley_home / 'bob.db'}"
    assert cli("restore", str(archive), "--to", target).returncode == 0
    listed = cli("--user", bob, "sessions", "list", "--json", url=target)
    assert [s["title"] for s in json.loads(listed.stdout)] == ["Bob's secrets"]
