"""Encryption at rest: nothing readable in storage, key sources, wrong keys, bad tokens."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import asyncpg
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from engine import Engine, Settings
from engine.keys import crypto
from engine.db import models as m
from engine.db.coltypes import UnreadableText
from engine.errors import KeyFileInsecure, KeyMismatch, KeyMissing
from engine.history.sessions import purge_wal
from tests.conftest import migrate

CANARY = "canary-7f3a9c-Zürich-日本-secret"


async def _seed_canary(engine: Engine) -> tuple[int, int]:
    created = await engine.sessions.create(CANARY, system_prompt=f"prompt {CANARY}")
    msg = await engine.sessions.add_message(created.id, "user", f"my {CANARY} message")
    assert engine.db is not None
    async with engine.db.write() as s:
        s.add(m.Citation(user_id=engine.user_id, message_id=msg.id, marker=1, path="doc.md",
                         snippet=f"quoted {CANARY}"))
    return created.id, msg.id


async def _postgres_rows_as_text(url: str) -> str:
    dsn = make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)
    conn = await asyncpg.connect(dsn)
    try:
        tables = [r["tablename"] for r in await conn.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        out = []
        for table in tables:
            out += [r[0] for r in await conn.fetch(f'SELECT t::text FROM "{table}" t')]
        return "\n".join(out)
    finally:
        await conn.close()


async def test_canary_is_in_no_stored_byte_and_reads_back(engine: Engine, settings: Settings,
                                                          backend: str) -> None:
    session_id, _ = await _seed_canary(engine)
    needles = [CANARY.encode(), "Zürich-日本".encode(), b"canary-7f3a9c"]
    if backend == "sqlite":
        db = Path(make_url(settings.database_url()).database or "")
        for path in (db, db.with_name(db.name + "-wal")):  # before and after a checkpoint
            data = path.read_bytes() if path.exists() else b""
            assert not any(n in data for n in needles), path
        await purge_wal(engine.db)  # type: ignore[arg-type]
        assert not any(n in db.read_bytes() for n in needles)
    else:
        stored = await _postgres_rows_as_text(settings.database_url())
        assert "canary" not in stored and "gAAAAA" in stored  # tokens, not plaintext
    async with Engine(settings) as reopened:
        detail = await reopened.sessions.get(session_id)
    assert detail.session.title == CANARY
    assert detail.session.system_prompt == f"prompt {CANARY}"
    assert detail.messages[0].content == f"my {CANARY} message"
    assert detail.messages[0].citations[0].snippet == f"quoted {CANARY}"


async def test_key_file_is_created_owner_only(engine: Engine, settings: Settings) -> None:
    path = settings.key_file_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert crypto.is_fernet_key(path.read_text().strip())
    assert engine.key_source == f"file:{path}"


async def test_wrong_missing_and_exposed_keys_are_refused(engine: Engine, settings: Settings,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    await engine.sessions.create("private")
    await engine.close()
    path = settings.key_file_path()
    monkeypatch.setenv("PARLEY_KEY", Fernet.generate_key().decode())
    with pytest.raises(KeyMismatch, match="does not match this database"):
        await Engine(settings).open()
    monkeypatch.delenv("PARLEY_KEY")
    path.chmod(0o644)
    with pytest.raises(KeyFileInsecure, match="can be read by other users") as info:
        await Engine(settings).open()
    assert info.value.hint == f"run: chmod 600 {path}"
    path.chmod(0o600)
    saved = path.read_bytes()
    path.write_text("not a key\n")
    with pytest.raises(KeyMismatch, match="does not hold a Fernet key"):
        await Engine(settings).open()
    path.unlink()
    with pytest.raises(KeyMissing, match="no encryption key found"):
        await Engine(settings).open()
    assert not path.exists()  # a database with encrypted data never gets a fresh key file
    path.write_bytes(saved)
    path.chmod(0o600)
    async with Engine(settings) as reopened:
        assert [s.title for s in await reopened.sessions.list()] == ["private"]


async def test_passphrase_is_run_through_scrypt_with_a_salt(settings: Settings,
                                                            monkeypatch: pytest.MonkeyPatch
                                                            ) -> None:
    monkeypatch.setenv("PARLEY_KEY", "correct horse battery staple")
    await migrate(settings)
    async with Engine(settings) as opened:
        assert opened.key_source == "env:PARLEY_KEY (passphrase)"
        await opened.sessions.create("behind a passphrase")
        assert opened.db is not None
        async with opened.db.read() as s:
            salt = await s.scalar(select(m.UserKey.kdf_salt)
                                  .where(m.UserKey.user_id == opened.user_id))
    assert salt is not None and len(bytes.fromhex(salt)) == 16
    assert not settings.key_file_path().exists()  # the passphrase is the key: no file
    async with Engine(settings) as again:
        assert [s.title for s in await again.sessions.list()] == ["behind a passphrase"]
    monkeypatch.setenv("PARLEY_KEY", "correct horse battery stapler")
    with pytest.raises(KeyMismatch):
        await Engine(settings).open()


async def test_a_passphrase_for_a_key_database_writes_no_salt(engine: Engine, settings: Settings,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    await engine.close()
    monkeypatch.setenv("PARLEY_KEY", "a passphrase this database never saw")
    with pytest.raises(KeyMismatch, match="passphrase"):
        await Engine(settings).open()
    monkeypatch.delenv("PARLEY_KEY")
    async with Engine(settings) as reopened:
        assert reopened.db is not None
        async with reopened.db.read() as s:
            salts = set(await s.scalars(select(m.UserKey.kdf_salt)))
    assert salts == {None}


async def test_one_corrupted_token_spoils_only_its_value(engine: Engine) -> None:
    created = await engine.sessions.create("three messages")
    first = await engine.sessions.add_message(created.id, "user", "first")
    middle = await engine.sessions.add_message(created.id, "assistant", "second")
    await engine.sessions.add_message(created.id, "user", "third")
    assert engine.db is not None
    async with engine.db.write() as s:
        token = await s.scalar(text("SELECT content FROM messages WHERE id = :id"),
                               {"id": middle.id})
        broken = token[:30] + ("A" if token[30] != "A" else "B") + token[31:]
        await s.execute(text("UPDATE messages SET content = :c WHERE id = :id"),
                        {"c": broken, "id": middle.id})
    detail = await engine.sessions.get(created.id)
    contents = [msg.content for msg in detail.messages]
    assert contents[0] == "first" and contents[2] == "third"
    assert isinstance(contents[1], UnreadableText) and contents[1].startswith("[unreadable")
    assert detail.messages[1].error == "content cannot be decrypted"
    assert detail.messages[0].error is None and detail.messages[0].id == first.id
    found = await engine.sessions.search("d")  # "second" would match: it is skipped
    assert found.unreadable == 1
    assert {h.message_id for h in found.hits} == {detail.messages[2].id}
    assert [s.message_count for s in await engine.sessions.list()] == [3]


async def test_key_file_with_older_keys_opens(engine: Engine, settings: Settings) -> None:
    await engine.sessions.create("kept")
    await engine.close()
    path = settings.key_file_path()
    current = path.read_bytes().strip()
    crypto.replace_key_file(path, [current, Fernet.generate_key()])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]
    async with Engine(settings) as reopened:
        assert reopened.cipher is not None and len(reopened.cipher.keys) == 2
        assert [s.title for s in await reopened.sessions.list()] == ["kept"]


def test_key_material_rules(tmp_path: Path) -> None:
    key = Fernet.generate_key()
    assert crypto.secret_to_key(key.decode(), None) == key
    assert crypto.secret_to_key("a passphrase", None) is None  # no salt: never a bare hash
    salt = os.urandom(16).hex()
    derived = crypto.secret_to_key("a passphrase", salt)
    assert derived is not None and crypto.is_fernet_key(derived.decode())
    assert derived == crypto.secret_to_key("a passphrase", salt)
    assert derived != crypto.secret_to_key("a passphrase", os.urandom(16).hex())
    cipher = crypto.FernetCipher([key])
    assert cipher.verify(cipher.check_value())
    assert not crypto.FernetCipher([Fernet.generate_key()]).verify(cipher.check_value())
