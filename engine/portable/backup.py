"""``parley backup`` and ``parley restore``: a consistent snapshot in a checked archive.

The archive is a plain tar of ``manifest.json``, ``parley.db.gz`` and ``SHA256SUM`` (the
sha256 of every byte before it): the payload is always an SQLite Parley database, so one
format serves both backends. From
SQLite it is ``VACUUM INTO`` (a read transaction: consistent while Parley writes); from
PostgreSQL it is ``db copy`` into a fresh SQLite file (one REPEATABLE READ snapshot).
The manifest holds the schema revision, row counts per table and the payload's size and
sha256. Restoring stages and checks everything (authenticity, sha256, size, manifest)
before the target is touched; a bad archive leaves no trace.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy import func, select

from engine.db import schema
from engine.db.connect import Database, create_engine, mask_url, sqlite_path
from engine.portable.plan import build_plans
from engine.portable.results import ArchiveError, BackupResult, CopyRefused
from engine.portable.sealed import MAGIC, OpeningReader, SealingWriter, archive_key, read_header

FORMAT = "parley-backup"
PAYLOAD = "parley.db"
PACKED = "parley.db.gz"
CHECKSUM = "SHA256SUM"
SUFFIX = ".parley-backup"
AUDIT_BACKUP = "backup"


def default_path(folder: Path) -> Path:
    return folder / f"parley-{datetime.now(UTC):%Y%m%d-%H%M%S}{SUFFIX}"


def _sqlite_url(path: Path) -> str:
    return f"sqlite:///{path}"


def _vacuum_into(source: Path, target: Path) -> None:
    import sqlean
    import sqlite_vec

    conn = sqlean.connect(str(source))
    try:
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.execute("PRAGMA busy_timeout=30000")
        conn.execute("VACUUM INTO ?", (str(target),))
    finally:
        conn.close()


async def snapshot_to(url: str, work: Path, *, settings: Any = None,
                      progress: Callable[[str, int, int], None] | None = None,
                      users: list[str] | None = None) -> Path:
    """A consistent SQLite snapshot of the database at ``url`` (or of some users' data:
    then through the copy path on SQLite too) in ``work``."""
    out = work / PAYLOAD
    path = sqlite_path(url)
    if path is not None and not users:
        if not path.exists():
            raise CopyRefused(f"there is no database at {path}", "check database.url")
        await asyncio.to_thread(_vacuum_into, path, out)
        return out
    from engine.portable.access import Access
    from engine.portable.copier import Copier
    from engine.portable.state import Runner, forget_state

    report = await Copier(url, _sqlite_url(out), settings=settings, progress=progress,
                          users=users).run()
    db = Database(create_engine(_sqlite_url(out)))
    try:
        await forget_state(db, report.copy_id, Runner.of(Access("sqlite")))
    finally:
        await db.dispose()
    return out


async def describe(payload: Path) -> tuple[str, dict[str, int]]:
    """The payload's schema revision and row count per table."""
    db = Database(create_engine(_sqlite_url(payload)))
    try:
        revision = (await schema.status(db)).current
        counts = {}
        async with db.engine.connect() as conn:
            for plan in build_plans():
                counts[plan.name] = int(await conn.scalar(
                    select(func.count()).select_from(plan.table)) or 0)
    finally:
        await db.dispose()
    if revision is None:
        raise ArchiveError("the backup payload has no Parley schema", None)
    return revision, counts


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class _Hashing:
    """A write-through file object that hashes and counts what passes."""

    def __init__(self, inner: Any) -> None:
        self.inner, self.hash, self.count = inner, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self.hash.update(data)
        self.count += len(data)
        self.inner.write(data)
        return len(data)

    def tell(self) -> int:
        return self.count

    def flush(self) -> None:
        self.inner.flush()


def _gzip(payload: Path, out: Path) -> None:
    # level 1: most of the gain (texts, tokens, empty pages) for a fraction of the time
    with open(payload, "rb") as src, gzip.GzipFile(out, "wb", compresslevel=1, mtime=0) as dst:
        shutil.copyfileobj(src, dst, 1 << 20)


def _add(tar: tarfile.TarFile, name: str, body: bytes | Path) -> None:
    if isinstance(body, Path):
        tar.add(str(body), arcname=name)
        return
    info = tarfile.TarInfo(name)
    info.size, info.mtime, info.mode = len(body), int(time.time()), 0o600
    tar.addfile(info, io.BytesIO(body))


def write_archive(out: Path, payload: Path, manifest: dict[str, Any],
                  seal: tuple[str, bytes, bytes, str | None] | None) -> None:
    """A plain tar (``tar tf`` lists it): ``manifest.json``, ``parley.db.gz``, then
    ``SHA256SUM`` holding the sha256 of every byte before it. Written to ``out.partial``
    and renamed: a crash never leaves a half archive under the final name."""
    partial = out.with_name(out.name + ".partial")
    packed = payload.with_name(PACKED)
    try:
        _gzip(payload, packed)
        # 0600: the archive holds document texts in the clear unless sealed
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw:
            stream: Any = raw
            if seal is not None:
                mode, salt, key, kdf_salt = seal
                stream = SealingWriter(raw, mode, salt, key, kdf_salt)
            hashing = _Hashing(stream)
            with tarfile.open(fileobj=hashing, mode="w") as tar:  # type: ignore[call-overload]
                _add(tar, "manifest.json",
                     json.dumps(manifest, indent=2, sort_keys=True).encode())
                _add(tar, PACKED, packed)
                _add(tar, CHECKSUM, f"{hashing.hash.hexdigest()}  archive\n".encode())
            if seal is not None:
                stream.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)
        packed.unlink(missing_ok=True)


async def backup(url: str, out: Path, *, seal: tuple[str, bytes, bytes, str | None] | None,
                 settings: Any = None, parley_version: str = "",
                 progress: Callable[[str, int, int], None] | None = None,
                 users: list[str] | None = None) -> BackupResult:
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".parley-backup-", dir=out.parent) as tmp:
        payload = await snapshot_to(url, Path(tmp), settings=settings, progress=progress,
                                    users=users)
        revision, counts = await describe(payload)
        digest = await asyncio.to_thread(_sha256, payload)
        manifest = {
            "format": FORMAT, "version": 1, "parley_version": parley_version,
            "created_at": datetime.now(UTC).isoformat(), "source": mask_url(url),
            "source_backend": "sqlite" if sqlite_path(url) else "postgresql",
            "schema_revision": revision, "tables": counts,
            "payload": {"name": PAYLOAD, "size": payload.stat().st_size, "sha256": digest},
            "encrypted": seal is not None, "users": users or "all",
        }
        await asyncio.to_thread(write_archive, out, payload, manifest, seal)
    return BackupResult(str(out), revision, seal is not None, out.stat().st_size, digest,
                        counts, time.perf_counter() - started)


# -- reading an archive ----------------------------------------------------------------------
def open_archive(path: Path, key_for: Callable[[dict[str, str]], bytes]) -> tuple[IO[bytes], Any]:
    """The archive's tar stream (opened through the seal when there is one)."""
    raw = open(path, "rb")  # noqa: SIM115  (closed by the caller)
    if raw.read(len(MAGIC)) != MAGIC:
        raw.seek(0)
        return raw, raw
    raw.seek(0)
    header, aad = read_header(raw)
    return raw, OpeningReader(raw, header, aad, key_for(header))


def _prefix_sha256(path: Path, end: int) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        left = end
        while left > 0 and (block := handle.read(min(left, 1 << 20))):
            h.update(block)
            left -= len(block)
    return h.hexdigest()


def _only_zeros_after(path: Path, start: int) -> bool:
    with open(path, "rb") as handle:
        handle.seek(start)
        while block := handle.read(1 << 20):
            if block.count(0) != len(block):
                return False
    return True


def _read_members(path: Path, tar: tarfile.TarFile, payload: Path
                  ) -> tuple[dict[str, Any], str, tarfile.TarInfo]:
    first = tar.next()
    if first is None or first.name != "manifest.json":
        raise ArchiveError(f"{path} is not a Parley backup (no manifest first)", None)
    handle = tar.extractfile(first)
    assert handle is not None
    manifest = json.loads(handle.read())
    if manifest.get("format") != FORMAT:
        raise ArchiveError(f"{path} is not a Parley backup", None)
    second = tar.next()
    if second is None or second.name != PACKED:
        raise ArchiveError(f"{path} is truncated: the database is missing", None)
    packed = tar.extractfile(second)
    assert packed is not None
    h = hashlib.sha256()
    with gzip.GzipFile(fileobj=packed, mode="rb") as src, open(payload, "wb") as dst:
        while block := src.read(1 << 20):  # the gzip CRC is checked at its end
            h.update(block)
            dst.write(block)
    third = tar.next()
    if third is None or third.name != CHECKSUM:
        raise ArchiveError(f"{path} is truncated: its checksum is missing", None)
    body = tar.extractfile(third)
    assert body is not None
    return manifest, h.hexdigest() + " " + body.read().decode("ascii").split()[0], third


def stage(path: Path, work: Path,
          key_for: Callable[[dict[str, str]], bytes]) -> tuple[dict[str, Any], Path]:
    """Check the archive end to end and extract its payload into ``work``: every byte
    (the archive's own sha256, or every sealed segment's authenticity), the manifest, and
    the payload's size and sha256."""
    if not path.is_file():
        raise ArchiveError(f"no backup archive at {path}", None)
    raw, stream = open_archive(path, key_for)
    payload = work / PAYLOAD
    sealed = stream is not raw
    try:
        with raw, tarfile.open(fileobj=stream, mode="r|" if sealed else "r:") as tar:
            manifest, sums, last = _read_members(path, tar, payload)
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError, IndexError,
            UnicodeDecodeError, gzip.BadGzipFile) as exc:
        raise ArchiveError(f"{path} is damaged or truncated ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})",
                           None) from None
    payload_sha, archive_sha = sums.split()
    if not sealed:  # a sealed archive is authenticated segment by segment instead
        end = last.offset_data + ((last.size + 511) // 512) * 512
        if _prefix_sha256(path, last.offset) != archive_sha or not _only_zeros_after(path, end):
            raise ArchiveError(f"{path} fails its checksum: it was altered or damaged", None)
    expected = manifest.get("payload", {})
    if payload.stat().st_size != expected.get("size") or payload_sha != expected.get("sha256"):
        raise ArchiveError(f"{path} fails its checksum: the database inside is not the one "
                           "the manifest describes", None)
    return manifest, payload


def move_into_place(payload: Path, target: Path) -> None:
    """The staged file becomes the target (same directory rename when possible)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(target.name + ".restoring")
    shutil.move(str(payload), partial)
    os.replace(partial, target)


# -- keys and the record of the last backup --------------------------------------------------
async def _my_key_facts(url: str, user: str) -> dict[str, str | None]:
    """The user's key check value and salt (on PostgreSQL the connecting role's)."""
    from sqlalchemy import text

    from engine.portable.target import user_key_facts

    db = Database(create_engine(url))
    try:
        async with db.engine.connect() as conn:
            if conn.dialect.name == "postgresql":
                user = str(await conn.scalar(text("SELECT session_user")))
            return (await user_key_facts(conn, [user])).get(user, {})
    finally:
        await db.dispose()


async def seal_for(url: str, settings: Any, passphrase: str | None
                   ) -> tuple[str, bytes, bytes, str | None]:
    """(mode, salt, archive key, the user's KDF salt) to seal a backup of ``url``."""
    from engine.keys import crypto
    from engine.portable.target import key_candidates

    salt = os.urandom(16)
    if passphrase:
        return "passphrase", salt, archive_key("passphrase", salt, passphrase=passphrase), None
    facts = await _my_key_facts(url, settings.user)
    keys = key_candidates(settings)(facts.get("kdf_salt"))
    check = facts.get("key_check")
    usable = [k for k in keys if check is None or crypto.key_matches(k, check)]
    if not usable:
        raise ArchiveError("no key that opens this database is available to seal the backup",
                           "set the key file or $PARLEY_KEY, or seal with --passphrase")
    return "key", salt, archive_key("key", salt, fernet_key=usable[0]), facts.get("kdf_salt")


def opener(settings: Any, passphrase: str | None) -> Callable[[dict[str, str]], bytes]:
    """How ``restore`` derives a sealed archive's key from its header."""
    from engine.portable.target import key_candidates

    def key_for(header: dict[str, str]) -> bytes:
        salt = bytes.fromhex(header["salt"])
        if header.get("mode") == "passphrase":
            return archive_key("passphrase", salt, passphrase=passphrase)
        keys = key_candidates(settings)(header.get("kdf_salt"))
        return archive_key("key", salt, fernet_key=keys[0] if keys else None)

    return key_for


async def record_backup(url: str, result: BackupResult, user: str) -> None:
    """Remember the backup in the audit log of the user who made it (on PostgreSQL the
    connecting role: a member may write only their own rows): the library screen shows
    the last one."""
    from sqlalchemy import insert, text

    from engine.db import models as m

    db = Database(create_engine(url))
    try:
        async with db.engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                user = str(await conn.scalar(text("SELECT session_user")))
            uid = await conn.scalar(select(m.User.id).where(m.User.name == user))
            if uid is None:
                return
            await conn.execute(insert(m.AuditLog).values(
                user_id=uid, actor=user, action=AUDIT_BACKUP, target=result.path,
                detail={"encrypted": result.encrypted, "size": result.size},
                created_at=datetime.now(UTC)))
    finally:
        await db.dispose()


async def last_backup(db: Database, user_id: int) -> dict[str, Any] | None:
    from engine.db import models as m

    async with db.read() as s:
        row = (await s.execute(select(m.AuditLog.created_at, m.AuditLog.target,
                                      m.AuditLog.detail)
                               .where(m.AuditLog.user_id == user_id,
                                      m.AuditLog.action == AUDIT_BACKUP)
                               .order_by(m.AuditLog.id.desc()).limit(1))).first()
    if row is None:
        return None
    at, path, detail = row
    return {"at": at.isoformat(), "path": path, **(detail or {})}
