"""Key rotation: every value re-encrypted, resumable after a crash or a kill, old key retired."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import asyncpg
import pytest
import sqlean
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Text, func, select, text, type_coerce
from sqlalchemy.engine import make_url

from engine import Engine, Settings
from engine.db import models as m
from engine.db.coltypes import UnreadableText
from engine.errors import KeyMismatch, KeyMissing, UsageError
from engine.keys.rotation import META_ROTATION, Rotation, encrypted_columns
from tests.conftest import migrate

REPO = Path(__file__).resolve().parents[2]


async def _seed(engine: Engine, sessions: int = 6, per_session: int = 10) -> dict[str, str]:
    """Sessions, messages and citations; returns 'table.column:id' -> plaintext."""
    assert engine.db is not None
    expected: dict[str, str] = {}
    async with engine.db.write() as s:
        for i in range(sessions):
            row = m.Session(user_id=engine.user_id, title=f"session {i} ✓",
                            system_prompt=f"prompt {i}" if i % 2 else None)
            s.add(row)
            await s.flush()
            expected[f"sessions.title:{row.id}"] = row.title
            if row.system_prompt:
                expected[f"sessions.system_prompt:{row.id}"] = row.system_prompt
            msgs = [m.Message(user_id=engine.user_id, session_id=row.id, role="user",
                              content=f"message {i}/{j} «{'x' * j}»") for j in range(per_session)]
            s.add_all(msgs)
            await s.flush()
            for msg in msgs:
                expected[f"messages.content:{msg.id}"] = msg.content
            cite = m.Citation(user_id=engine.user_id, message_id=msgs[0].id, marker=1, path="p",
                              snippet=f"snippet {i}")
            s.add(cite)
            await s.flush()
            expected[f"citations.snippet:{cite.id}"] = cite.snippet
            run = m.ToolRun(user_id=engine.user_id, session_id=row.id, message_id=msgs[-1].id,
                            call_id=f"call_{i}", server="files", tool="read",
                            arguments=f'{{"path": "secret-{i}.txt"}}', result=f"contents {i}",
                            error=f"warning {i}" if i % 2 else None, status="ok",
                            decision="auto", round=1, call_index=0, result_chars=10,
                            truncated=False)
            s.add(run)
            await s.flush()
            expected[f"tool_runs.arguments:{run.id}"] = run.arguments
            expected[f"tool_runs.result:{run.id}"] = run.result
            if run.error:
                expected[f"tool_runs.error:{run.id}"] = run.error
    return expected


async def _raw_tokens(engine: Engine) -> dict[str, str]:
    assert engine.db is not None
    out = {}
    async with engine.db.read() as s:
        for table, cols in encrypted_columns():
            for col in cols:
                rows = await s.execute(select(table.c.id, type_coerce(col, Text))
                                       .where(col.isnot(None)))
                out.update({f"{table.name}.{col.name}:{i}": token for i, token in rows})
    return out


async def _decrypted(engine: Engine) -> dict[str, str]:
    assert engine.db is not None
    out = {}
    async with engine.db.read() as s:
        for table, cols in encrypted_columns():
            for col in cols:
                rows = await s.execute(select(table.c.id, col).where(col.isnot(None)))
                out.update({f"{table.name}.{col.name}:{i}": value for i, value in rows})
    assert not [k for k, v in out.items() if isinstance(v, UnreadableText)]
    return out


def _readable_by(key: bytes, tokens: dict[str, str]) -> int:
    fernet, count = Fernet(key), 0
    for token in tokens.values():
        try:
            fernet.decrypt(token.encode())
            count += 1
        except InvalidToken:
            pass
    return count


async def _meta(engine: Engine, key: str) -> str | None:
    """The user's key fact named as it was in parley_meta (now in user_keys)."""
    assert engine.db is not None and key == META_ROTATION
    async with engine.db.read() as s:
        return await s.scalar(select(m.UserKey.rotation)
                              .where(m.UserKey.user_id == engine.user_id))


async def test_rotation_re_encrypts_everything_and_retires_the_old_key(
        engine: Engine, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    expected = await _seed(engine)
    old_key = settings.key_file_path().read_bytes().strip()
    engine.settings.crypto.rotate_batch_size = 7
    seen: list[tuple[str, int]] = []
    result = await engine.keys.rotate(on_progress=lambda p: seen.append((p.phase, p.done)))
    assert result.rewritten == len(expected) and result.unreadable == 0 and not result.resumed
    assert {phase for phase, _ in seen} == {"rotate", "verify"}
    assert [d for p, d in seen if p == "rotate"] == sorted(d for p, d in seen if p == "rotate")
    keys = settings.key_file_path().read_text().split()
    assert len(keys) == 1 and keys[0].encode() != old_key
    tokens = await _raw_tokens(engine)
    assert _readable_by(keys[0].encode(), tokens) == len(expected)
    assert _readable_by(old_key, tokens) == 0
    assert await _decrypted(engine) == expected
    assert await _meta(engine, META_ROTATION) is None
    status = await engine.keys.status()
    assert status.rotation is None and status.keys_loaded == 1 and status.matches
    assert status.last_rotated_at is not None
    async with engine.db.read() as s:  # type: ignore[union-attr]
        audit = (await s.scalars(select(m.AuditLog))).one()
    assert audit.action == "key.rotate" and audit.detail["rewritten"] == len(expected)
    await engine.close()
    async with Engine(settings) as reopened:
        assert await _decrypted(reopened) == expected
    monkeypatch.setenv("PARLEY_KEY", old_key.decode())
    with pytest.raises(KeyMismatch) as info:
        await Engine(settings).open()
    assert "rotated on" in (info.value.hint or "")


class _Crash(Exception):
    pass


async def test_rotation_resumes_after_a_crash_between_batches(engine: Engine,
                                                              settings: Settings) -> None:
    expected = await _seed(engine)
    engine.settings.crypto.rotate_batch_size = 4
    calls = 0

    def crash_on_third(_: object) -> None:
        nonlocal calls
        calls += 1
        if calls == 3:
            raise _Crash

    with pytest.raises(_Crash):
        await engine.keys.rotate(on_progress=crash_on_third)
    await engine.close()
    keys = settings.key_file_path().read_text().split()
    assert len(keys) == 2  # new key first, old key kept until the rotation is done
    async with Engine(settings) as middle:  # a mix of old and new tokens: both keys open it
        status = await middle.keys.status()
        assert status.rotation is not None and status.rotation.phase == "rotate"
        assert 0 < status.rotation.done < status.rotation.total and status.keys_loaded == 2
        tokens = await _raw_tokens(middle)
        assert 0 < _readable_by(keys[0].encode(), tokens) < len(tokens)
        assert await _decrypted(middle) == expected
        later = await middle.sessions.add_message(1, "user", "written mid-rotation")
        expected[f"messages.content:{later.id}"] = "written mid-rotation"
        middle.settings.crypto.rotate_batch_size = 4
        result = await middle.keys.rotate()
        assert result.resumed and result.unreadable == 0
        tokens = await _raw_tokens(middle)
        assert _readable_by(keys[0].encode(), tokens) == len(expected)
        assert _readable_by(keys[1].encode(), tokens) == 0
        assert await _decrypted(middle) == expected
    assert settings.key_file_path().read_text().split() == keys[:1]


async def test_rotation_to_a_key_from_the_environment(settings: Settings,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    old = Fernet.generate_key().decode()
    monkeypatch.setenv("PARLEY_KEY", old)
    await migrate(settings)
    async with Engine(settings) as opened:
        expected = await _seed(opened, sessions=2, per_session=3)
        with pytest.raises(UsageError, match="cannot change"):
            await opened.keys.rotate()
        with pytest.raises(UsageError, match="is not set"):
            await opened.keys.rotate(new_key_env="PARLEY_NEW_KEY")
        monkeypatch.setenv("PARLEY_NEW_KEY", old)
        with pytest.raises(UsageError, match="already in use"):
            await opened.keys.rotate(new_key_env="PARLEY_NEW_KEY")
        monkeypatch.setenv("PARLEY_NEW_KEY", "a brand new passphrase")
        opened.settings.crypto.rotate_batch_size = 2
        with pytest.raises(_Crash):
            await opened.keys.rotate(new_key_env="PARLEY_NEW_KEY",
                                     on_progress=lambda p: (_ for _ in ()).throw(_Crash()))
    monkeypatch.delenv("PARLEY_NEW_KEY")
    with pytest.raises(KeyMissing, match="rotation is unfinished") as info:
        await Engine(settings).open()
    assert "--new-key-env PARLEY_NEW_KEY" in (info.value.hint or "")
    monkeypatch.setenv("PARLEY_NEW_KEY", "a brand new passphrase")
    async with Engine(settings) as resumed:
        assert await _decrypted(resumed) == expected
        result = await resumed.keys.rotate(new_key_env="PARLEY_NEW_KEY")
    assert result.resumed and result.new_key_location == "$PARLEY_NEW_KEY"
    assert not settings.key_file_path().exists()
    with pytest.raises(KeyMismatch):
        await Engine(settings).open()  # $PARLEY_KEY still holds the retired key
    monkeypatch.setenv("PARLEY_KEY", "a brand new passphrase")
    monkeypatch.delenv("PARLEY_NEW_KEY")
    async with Engine(settings) as after:
        assert await _decrypted(after) == expected


async def test_a_prepared_rotation_whose_key_never_reached_the_file_starts_over(
        engine: Engine, settings: Settings) -> None:
    expected = await _seed(engine, sessions=1, per_session=2)
    lost = Rotation(new_check=Fernet(Fernet.generate_key()).encrypt(b"x").decode(),
                    phase="prepare", total=3, started_at="2025-01-01T00:00:00+00:00")
    async with engine.db.write() as s:  # type: ignore[union-attr]
        row = await s.get(m.UserKey, engine.user_id)
        assert row is not None
        row.rotation = lost.dump()
    await engine.close()
    async with Engine(settings) as reopened:  # the old key still opens it
        assert await _decrypted(reopened) == expected
        result = await reopened.keys.rotate()
        assert not result.resumed and result.rewritten == len(expected)
        assert await _decrypted(reopened) == expected


async def test_corrupted_values_do_not_hold_the_old_key_back(engine: Engine,
                                                             settings: Settings) -> None:
    expected = await _seed(engine, sessions=2, per_session=3)
    async with engine.db.write() as s:  # type: ignore[union-attr]
        await s.execute(text("UPDATE messages SET content = 'gAAAAAnot-a-token' WHERE id = 2"))
    del expected["messages.content:2"]
    result = await engine.keys.rotate()
    assert result.unreadable == 1 and result.rewritten == len(expected)
    assert len(settings.key_file_path().read_text().split()) == 1
    async with engine.db.read() as s:  # type: ignore[union-attr]
        raw = await s.scalar(text("SELECT content FROM messages WHERE id = 2"))
    assert raw == "gAAAAAnot-a-token"  # left exactly as it was


# --- a real process killed in the middle of a rotation ------------------------------------


def _cli(url: str, home: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "tui.cli", "--db", url, *args]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_HOME=str(home), PARLEY_CRYPTO__ROTATE_BATCH_SIZE="5",
               PARLEY_DATABASE__BUSY_TIMEOUT_MS="60000")
    return env


class _Lock:
    """Holds the rotation state row so the rotating process blocks at its next batch."""

    def __init__(self, url: str, backend: str) -> None:
        self.url, self.backend = url, backend
        self.sqlite: sqlean.Connection | None = None
        self.pg: asyncpg.Connection | None = None

    async def state(self) -> dict | None:
        if self.backend == "sqlite":
            conn = self.sqlite or sqlean.connect(make_url(self.url).database, timeout=30)
            row = conn.execute("SELECT rotation FROM user_keys WHERE rotation IS NOT NULL"
                               ).fetchone()
            if self.sqlite is None:
                conn.close()
        else:
            assert self.pg is not None
            row = await self.pg.fetchrow(
                "SELECT rotation FROM user_keys WHERE rotation IS NOT NULL")
        return json.loads(row[0]) if row else None

    async def open(self) -> None:
        if self.backend != "sqlite":
            dsn = make_url(self.url).set(drivername="postgresql")
            self.pg = await asyncpg.connect(dsn.render_as_string(hide_password=False))

    async def take(self) -> None:
        if self.backend == "sqlite":
            # SQLite's busy handler sleeps with growing back-off while the rotating process
            # takes the lock again and again, so a blocking BEGIN could wait until the whole
            # rotation is done. Retrying without waiting catches the gap between two batches.
            self.sqlite = sqlean.connect(make_url(self.url).database, isolation_level=None,
                                         timeout=0)
            deadline = time.monotonic() + 30
            while True:
                try:
                    self.sqlite.execute("BEGIN IMMEDIATE")
                    return
                except sqlean.OperationalError:
                    assert time.monotonic() < deadline, "the database stayed locked"
        else:
            assert self.pg is not None
            await self.pg.execute("BEGIN")
            await self.pg.execute("SELECT rotation FROM user_keys FOR UPDATE")

    async def release(self) -> None:
        if self.sqlite is not None:
            self.sqlite.execute("ROLLBACK")
            self.sqlite.close()
            self.sqlite = None
        if self.pg is not None and self.pg.is_in_transaction():
            await self.pg.execute("ROLLBACK")

    async def close(self) -> None:
        await self.release()
        if self.pg is not None:
            await self.pg.close()
            self.pg = None


@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
async def test_rotation_killed_halfway_then_resumed(engine: Engine, settings: Settings,
                                                    backend: str, parley_home: Path,
                                                    how: str) -> None:
    """A crash (SIGKILL) or Ctrl-C (SIGINT) while batches are being committed."""
    expected = await _seed(engine, sessions=20, per_session=30)
    old_key = settings.key_file_path().read_bytes().strip()
    await engine.close()
    url = settings.database_url()
    lock = _Lock(url, backend)
    await lock.open()
    proc = subprocess.Popen(_cli(url, parley_home, "key", "rotate"), cwd=REPO,
                            env=_env(parley_home), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    try:
        deadline = time.monotonic() + 60
        while True:  # wait until some batches are committed, checking under the lock so
            await lock.take()  # the process cannot finish between the check and the kill
            state = await lock.state()
            if state and state["phase"] == "rotate" and state["done"] >= 50:
                break
            await lock.release()
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline, "the rotation never made progress"
            await asyncio.sleep(0.002)
        assert state["done"] < state["total"]
        proc.send_signal(getattr(signal, how))
        if how == "SIGKILL":
            proc.wait(timeout=30)
        await lock.release()
        _, stderr = proc.communicate(timeout=60)
        if how == "SIGKILL":
            assert proc.returncode == -signal.SIGKILL
        else:
            assert proc.returncode == 130, stderr
            assert "rotation paused; run 'parley key rotate' to resume" in stderr
    finally:
        if proc.poll() is None:
            proc.kill()
        await lock.close()

    keys = settings.key_file_path().read_text().split()
    assert len(keys) == 2 and keys[1].encode() == old_key
    async with Engine(settings) as middle:
        assert (await middle.keys.status()).rotation is not None
        tokens = await _raw_tokens(middle)
        assert 0 < _readable_by(keys[0].encode(), tokens) < len(tokens)
        assert await _decrypted(middle) == expected  # nothing lost, nothing unreadable
    resumed = subprocess.run(_cli(url, parley_home, "key", "rotate", "--json"), cwd=REPO,
                             env=_env(parley_home), capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["resumed"] is True
    assert "old key is retired" in resumed.stderr
    assert settings.key_file_path().read_text().split() == keys[:1]
    async with Engine(settings) as after:
        tokens = await _raw_tokens(after)
        assert _readable_by(keys[0].encode(), tokens) == len(expected)
        assert _readable_by(old_key, tokens) == 0
        assert await _decrypted(after) == expected
        assert await _meta(after, META_ROTATION) is None
        async with after.db.read() as s:  # type: ignore[union-attr]
            assert await s.scalar(select(func.count()).select_from(m.AuditLog)
                                  .where(m.AuditLog.action == "key.rotate")) == 1
