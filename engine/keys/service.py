"""A user's encryption key: opening with the right key(s), status, and rotation.

The key belongs to the user (``engine.keys.state``): on a PostgreSQL team each member's
history is under their own key. Rotation (``KeyManager.rotate``) re-encrypts every value of
the caller's ``EncryptedText`` columns under a new key, in batches of
``crypto.rotate_batch_size`` rows, each batch one transaction that also records how far it
got in the user's ``user_keys.rotation``. So a crash, a kill or Ctrl-C loses at most the
batch in flight, and running it again resumes.

The new key is made durable before any value is written under it: with a key file, the
file is atomically rewritten to hold the new key first and the old one after it; with a key
from the environment, the new key or passphrase comes from another variable
(``--new-key-env``) and stays the user's to keep. While a rotation is unfinished every
process opens the database with both keys (new first: new writes need no rotating).

Phases: ``prepare`` (state recorded, key file not yet rewritten: a crash here is simply
forgotten), ``rotate`` (every value re-encrypted), ``verify`` (a second pass checks that the
new key alone reads every value, re-encrypting any that a process still running with the old
key wrote meanwhile), ``retire`` (the check value now names the new key; the old key is
dropped from the key file, the state row removed and an ``audit_log`` row written).
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter
from typing import TYPE_CHECKING

from cryptography.fernet import Fernet
from sqlalchemy import Column, Table, func, select

from engine.keys import crypto
from engine.db import models as m
from engine.db.coltypes import utcnow
from engine.db.connect import Database
from engine.errors import KeyError_, KeyMismatch, KeyMissing, ParleyError, UsageError
from engine.keys import state as key_state
from engine.keys.rotation import (
    META_ROTATION,
    Rotation,
    count_rows,
    encrypted_columns,
    run_batch,
)
from engine.types import KeyStatus, RotationProgress, RotationResult

if TYPE_CHECKING:
    from engine.config import Settings
    from engine.facade import Engine


@dataclass(frozen=True)
class OpenedKey:
    """The cipher a database opens with, and where its first key came from."""

    cipher: crypto.FernetCipher
    source: str


async def read_meta(db: Database, user_name: str) -> dict[str, str]:
    """The user's key check value, KDF salt and rotation state (by ``parley_meta`` name)."""
    return (await key_state.read(db, user_name))[1]


def _env_keys(settings: Settings, rotation: Rotation | None, salt: str | None) -> list[bytes]:
    """Extra keys from the environment: ``${key_env}_OLD`` and a rotation's new key."""
    names = [settings.crypto.key_env + "_OLD"]
    if rotation is not None and rotation.new_key_env:
        names.append(rotation.new_key_env)
    found = []
    for name in names:
        value = os.environ.get(name)
        key = crypto.secret_to_key(value, salt) if value else None
        if key is not None:
            found.append(key)
    return found


def _first_matching(keys: list[bytes], check_value: str) -> bytes | None:
    return next((k for k in keys if crypto.key_matches(k, check_value)), None)


async def open_cipher(db: Database, settings: Settings, *, create: bool) -> OpenedKey | None:
    """Resolve the key(s) and check them against the database before anything is read.

    Returns None only for a database with nothing encrypted yet and no key (the key file
    is created after migrating). Writes nothing unless the database has no check value yet.
    """
    user_id, meta = await key_state.read(db, settings.user)
    check = meta.get(crypto.META_KEY_CHECK)
    if check is None and not create and not await key_state.per_user(db):
        return None  # a database from before per-user keys: checked after its upgrade
    rotation = Rotation.load(meta[META_ROTATION]) if META_ROTATION in meta else None
    material = crypto.resolve_key(settings, create=create and check is None)
    env = settings.crypto.key_env
    if material is None:
        if check is None:
            return None
        raise KeyMissing(f"no encryption key found (looked in ${env} and "
                         f"{settings.key_file_path()})",
                         "restore your key file, or set the key in that environment variable")
    salt = meta.get(crypto.META_KDF_SALT)
    if material.passphrase is not None and salt is None:
        if check is not None:  # never write a salt into a database the key may not open
            raise KeyMismatch(f"the passphrase in ${env} does not match this database",
                              "it was created with a key, not a passphrase: use that key")
        salt = secrets.token_hex(16)
        await key_state.write(db, settings.user, kdf_salt=salt)
    primary = material.key or crypto.derive_key(material.passphrase or "",
                                                 bytes.fromhex(salt or ""))
    candidates = [primary, *material.retiring, *_env_keys(settings, rotation, salt)]
    if check is None:
        cipher = crypto.FernetCipher([primary])
        await key_state.write(db, settings.user, key_check=cipher.check_value())
        return OpenedKey(cipher, material.source)
    if rotation is not None:
        new = _first_matching(candidates, rotation.new_check)
        if new is not None or rotation.phase != "prepare":
            return OpenedKey(_rotation_cipher(candidates, new, check, rotation, env),
                             material.source)
    if not crypto.key_matches(primary, check):
        raise await _mismatch(db, material.source, user_id)
    return OpenedKey(crypto.FernetCipher(candidates), material.source)


def _rotation_cipher(candidates: list[bytes], new: bytes | None, check: str,
                     rotation: Rotation, env: str) -> crypto.FernetCipher:
    hint = f"then finish it: parley key rotate{rotation.resume_flags()}"
    if new is None:
        raise KeyMissing(f"a key rotation is unfinished and its new key is not available "
                         f"(it belongs in {rotation.location()})",
                         f"restore it there, {hint}")
    old = _first_matching(candidates, check)
    if old is None:
        raise KeyMissing("a key rotation is unfinished and the old key is not available: "
                         "values not yet re-encrypted need it",
                         f"keep the old key in the key file or in ${env}_OLD, {hint}")
    return crypto.FernetCipher([new, old, *candidates])


async def _mismatch(db: Database, source: str, user_id: int | None) -> KeyMismatch:
    async with db.read() as s:
        rotated = await s.scalar(select(func.max(m.AuditLog.created_at))
                                 .where(m.AuditLog.action == "key.rotate",
                                        m.AuditLog.user_id == user_id))
    hint = "use the key your history in this database was created with"
    if rotated is not None:
        hint = f"its key was rotated on {rotated:%Y-%m-%d %H:%M} UTC: use the new key"
    return KeyMismatch(f"the encryption key from {source} does not match this database", hint)


def _names(columns: list[tuple[Table, list[Column[str]]]]) -> tuple[str, ...]:
    return tuple(f"{t.name}.{c.name}" for t, cols in columns for c in cols)


class KeyManager:
    """Key status and rotation for one open engine."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    @property
    def _db(self) -> Database:
        assert self.engine.db is not None
        return self.engine.db

    def _install(self, keys: list[bytes]) -> None:
        cipher = crypto.FernetCipher(keys)
        self.engine.cipher = cipher
        self._db.engine.sync_engine.dialect.parley_cipher = cipher  # type: ignore[attr-defined]

    async def status(self) -> KeyStatus:
        """Where the key comes from, whether it opens the database, any unfinished rotation.

        Works on an engine opened with ``migrate=False`` too (``parley key status`` does),
        so a wrong or missing key is reported rather than raised. Writes nothing.
        """
        settings, db = self.engine.settings, self._db
        path = settings.key_file_path()
        columns = encrypted_columns()
        empty = (await self.engine.schema_status()).current is None
        user_id, meta = (None, {}) if empty else await key_state.read(db, settings.user)
        source, problem, loaded = self.engine.key_source, None, 0
        if self.engine.cipher is not None:
            loaded = len(self.engine.cipher.keys)
        elif crypto.META_KEY_CHECK in meta:
            try:
                opened = await open_cipher(db, settings, create=False)
                assert opened is not None  # a database with a check value needs a key
                source, loaded = opened.source, len(opened.cipher.keys)
            except KeyError_ as exc:
                problem = exc.one_line()
        else:  # nothing encrypted yet: any key will do, the first open records it
            try:
                material = crypto.resolve_key(settings, create=False)
                source = material.source if material else None
            except KeyError_ as exc:
                problem = exc.one_line()
        rotation = Rotation.load(meta[META_ROTATION]) if META_ROTATION in meta else None
        values, rotated = 0, None
        if not empty:
            async with db.read() as s:
                for table, cols in columns:
                    for col in cols:
                        values += await s.scalar(select(func.count()).select_from(table).where(
                            col.isnot(None), table.c.user_id == user_id)) or 0
                rotated = await s.scalar(select(func.max(m.AuditLog.created_at)).where(
                    m.AuditLog.action == "key.rotate", m.AuditLog.user_id == user_id))
        return KeyStatus(
            source=source, key_file=str(path), key_file_exists=path.exists(),
            matches=problem is None, problem=problem, keys_loaded=loaded,
            encrypted_columns=_names(columns), encrypted_values=values,
            rotation=rotation.public() if rotation else None, last_rotated_at=rotated)

    async def rotate(self, *, new_key_env: str | None = None,
                     on_progress: Callable[[RotationProgress], None] | None = None
                     ) -> RotationResult:
        """Re-encrypt every encrypted value under a new key, then retire the old key.

        With a key file a new key is generated into it; with a key from the environment
        ``new_key_env`` names the variable holding the new key or passphrase. Resumes an
        unfinished rotation instead of starting another.
        """
        if self.engine.cipher is None:
            raise ParleyError("no encryption key is loaded", "open the engine with migrate=True")
        started = perf_counter()
        meta = await read_meta(self._db, self.engine.settings.user)
        state = Rotation.load(meta[META_ROTATION]) if META_ROTATION in meta else None
        if state is not None and not crypto.key_matches(self.engine.cipher.keys[0],
                                                        state.new_check):
            await self._discard(state)  # prepared, but its key never reached the key file
            state = None
        resumed = state is not None
        if state is None:
            state = await self._start(new_key_env, meta)
        elif new_key_env and new_key_env != state.new_key_env:
            raise UsageError(f"a key rotation to the key in {state.location()} is unfinished",
                             f"finish it first: parley key rotate{state.resume_flags()}")
        if state.phase == "prepare":
            state = await self._commit_prepared(state)
        batch = self.engine.settings.crypto.rotate_batch_size
        shown = (state.phase, state.done)
        while state.phase in ("rotate", "verify"):
            state = await run_batch(self._db, self.engine.cipher, batch, self.engine.user_id)
            if on_progress is not None and (state.phase, state.done) != shown \
                    and state.phase in ("rotate", "verify"):
                shown = (state.phase, state.done)
                on_progress(RotationProgress(state.phase, state.done, state.total))
        await self._retire(state)
        return RotationResult(rewritten=state.rewritten, unreadable=state.unreadable,
                              seconds=perf_counter() - started, resumed=resumed,
                              new_key_location=state.location())

    async def _start(self, new_key_env: str | None, meta: dict[str, str]) -> Rotation:
        assert self.engine.cipher is not None
        settings = self.engine.settings
        salt, new_salt = meta.get(crypto.META_KDF_SALT), None
        if new_key_env:
            value = os.environ.get(new_key_env)
            if new_key_env == settings.crypto.key_env:
                raise UsageError(f"${new_key_env} holds the current key",
                                 "put the new key or passphrase in another variable")
            if not value:
                raise UsageError(f"${new_key_env} is not set",
                                 "put the new Fernet key or passphrase in it")
            if not crypto.is_fernet_key(value) and salt is None:
                salt = new_salt = secrets.token_hex(16)
            new = crypto.secret_to_key(value, salt)
            assert new is not None
        elif (self.engine.key_source or "").startswith("file:"):
            new = Fernet.generate_key()
        else:
            raise UsageError(f"the key comes from ${settings.crypto.key_env}, which Parley "
                             "cannot change", "put the new key or a new passphrase in another "
                             "variable and run: parley key rotate --new-key-env NAME")
        if crypto.key_matches(new, meta[crypto.META_KEY_CHECK]):
            raise UsageError("the new key is the key already in use", "give a different key")
        state = Rotation(new_check=crypto.FernetCipher([new]).check_value(),
                         phase="rotate" if new_key_env else "prepare", new_key_env=new_key_env,
                         total=await count_rows(self._db, self.engine.user_id),
                         started_at=utcnow().isoformat())
        async with self._db.write() as s:
            row = await s.get(m.UserKey, self.engine.user_id, with_for_update=True)
            assert row is not None  # the key was checked against it when opening
            if row.rotation is not None:
                raise ParleyError("another key rotation started meanwhile",
                                  "run parley key rotate again to continue it")
            row.rotation = state.dump()
            if new_salt is not None:
                row.kdf_salt = new_salt
        if state.phase == "prepare":
            # The new key reaches the key file (old key kept after it) before any value is
            # written under it; only then does the cipher of this process use it.
            path = settings.key_file_path()
            crypto.replace_key_file(path, [new, *crypto.read_key_file(path)])
        self._install([new, *self.engine.cipher.keys])
        return state

    async def _commit_prepared(self, state: Rotation) -> Rotation:
        async with self._db.write() as s:
            row = await s.get(m.UserKey, self.engine.user_id, with_for_update=True)
            assert row is not None and row.rotation is not None
            state = Rotation.load(row.rotation)
            if state.phase == "prepare":
                state.phase = "rotate"
                row.rotation = state.dump()
        return state

    async def _discard(self, state: Rotation) -> None:
        async with self._db.write() as s:
            row = await s.get(m.UserKey, self.engine.user_id, with_for_update=True)
            if row is not None and row.rotation is not None \
                    and Rotation.load(row.rotation).phase == "prepare":
                row.rotation = None

    async def _retire(self, state: Rotation) -> None:
        assert self.engine.cipher is not None
        new = self.engine.cipher.keys[0]
        path = self.engine.settings.key_file_path()
        if state.new_key_env is None and path.exists():
            crypto.replace_key_file(path, [new])
        async with self._db.write() as s:
            row = await s.get(m.UserKey, self.engine.user_id, with_for_update=True)
            if row is not None and row.rotation is not None:
                row.rotation = None
                actor = await s.scalar(select(m.User.name).where(m.User.id == self.engine.user_id))
                s.add(m.AuditLog(
                    user_id=self.engine.user_id, actor=actor or self.engine.settings.user,
                    action="key.rotate", target="database",
                    detail={"rewritten": state.rewritten, "unreadable": state.unreadable,
                            "new_key": state.location(), "started_at": state.started_at}))
        self._install([new])
        from engine.history.sessions import purge_wal

        await purge_wal(self._db)  # drop old tokens from the SQLite WAL as well
