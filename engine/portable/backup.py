"""``parley backup`` and ``parley restore``: a consistent snapshot in a checked archive.

The archive is a gzipped tar stream (level 1) of ``manifest.json`` then ``parley.db``: the
payload is always an SQLite Parley database, so one format serves both backends. From
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
from contextlib import suppress
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
SUFFIX = ".parley-backup"
META_LAST_BACKUP = "last_backup"


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
                      progress: Callable[[str, int, int], None] | None = None) -> Path:
    """A consistent SQLite snapshot of the database at ``url`` in ``work``."""
    out = work / PAYLOAD
    path = sqlite_path(url)
    if path is not None:
        if not path.exists():
            raise CopyRefused(f"there is no database at {path}", "check database.url")
        await asyncio.to_thread(_vacuum_into, path, out)
        return out
    from engine.portable.copier import Copier
    from engine.portable.target import forget_state

    report = await Copier(url, _sqlite_url(out), settings=settings, progress=progress).run()
    db = Database(create_engine(_sqlite_url(out)))
    try:
        await forget_state(db, report.copy_id)
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


def write_archive(out: Path, payload: Path, manifest: dict[str, Any],
                  seal: tuple[str, bytes, bytes, str | None] | None) -> None:
    """Write to ``out.partial``, then rename: a crash never leaves a half archive under the
    final name."""
    partial = out.with_name(out.name + ".partial")
    try:
        # 0600: the archive holds document texts in the clear unless sealed
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as raw:
            stream: Any = raw
            if seal is not None:
                mode, salt, key, kdf_salt = seal
                stream = SealingWriter(raw, mode, salt, key, kdf_salt)
            # level 1: most of the gain (texts, tokens) for a fraction of the time
            with gzip.GzipFile(fileobj=stream, mode="wb", compresslevel=1, mtime=0) as zipped, \
                    tarfile.open(fileobj=zipped, mode="w|") as tar:
                body = json.dumps(manifest, indent=2, sort_keys=True).encode()
                info = tarfile.TarInfo("manifest.json")
                info.size, info.mtime = len(body), int(time.time())
                tar.addfile(info, io.BytesIO(body))
                tar.add(str(payload), arcname=PAYLOAD)
            if seal is not None:
                stream.close()
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, out)
    finally:
        partial.unlink(missing_ok=True)


async def backup(url: str, out: Path, *, seal: tuple[str, bytes, bytes, str | None] | None,
                 settings: Any = None, parley_version: str = "",
                 progress: Callable[[str, int, int], None] | None = None) -> BackupResult:
    started = time.perf_counter()
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".parley-backup-", dir=out.parent) as tmp:
        payload = await snapshot_to(url, Path(tmp), settings=settings, progress=progress)
        revision, counts = await describe(payload)
        digest = await asyncio.to_thread(_sha256, payload)
        manifest = {
            "format": FORMAT, "version": 1, "parley_version": parley_version,
            "created_at": datetime.now(UTC).isoformat(), "source": mask_url(url),
            "source_backend": "sqlite" if sqlite_path(url) else "postgresql",
            "schema_revision": revision, "tables": counts,
            "payload": {"name": PAYLOAD, "size": payload.stat().st_size, "sha256": digest},
            "encrypted": seal is not None,
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


def stage(path: Path, work: Path,
          key_for: Callable[[dict[str, str]], bytes]) -> tuple[dict[str, Any], Path]:
    """Check the archive end to end and extract its payload into ``work``: the manifest,
    the payload's size and sha256, and (sealed) every segment's authenticity."""
    if not path.is_file():
        raise ArchiveError(f"no backup archive at {path}", None)
    raw, stream = open_archive(path, key_for)
    payload = work / PAYLOAD
    try:
        with raw, gzip.GzipFile(fileobj=stream, mode="rb") as zipped, \
                tarfile.open(fileobj=zipped, mode="r|") as tar:
            first = tar.next()
            if first is None or first.name != "manifest.json":
                raise ArchiveError(f"{path} is not a Parley backup (no manifest first)", None)
            handle = tar.extractfile(first)
            assert handle is not None
            manifest = json.loads(handle.read())
            if manifest.get("format") != FORMAT:
                raise ArchiveError(f"{path} is not a Parley backup", None)
            second = tar.next()
            if second is None or second.name != PAYLOAD:
                raise ArchiveError(f"{path} is truncated: the database is missing", None)
            src = tar.extractfile(second)
            assert src is not None
            h = hashlib.sha256()
            with open(payload, "wb") as dst:
                while block := src.read(1 << 20):
                    h.update(block)
                    dst.write(block)
            with suppress(StopIteration):
                tar.next()  # reads to the end: the gzip trailer's CRC is checked too
    except ArchiveError:
        raise
    except (tarfile.TarError, EOFError, OSError, ValueError, KeyError, json.JSONDecodeError,
            UnicodeDecodeError) as exc:
        raise ArchiveError(f"{path} is damaged or truncated ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0] if str(exc) else 'unreadable'})",
                           None) from None
    expected = manifest.get("payload", {})
    if payload.stat().st_size != expected.get("size") or h.hexdigest() != expected.get("sha256"):
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
async def _meta(url: str) -> dict[str, str]:
    from engine.portable.target import read_meta

    db = Database(create_engine(url))
    try:
        async with db.engine.connect() as conn:
            return await read_meta(conn)
    finally:
        await db.dispose()


async def seal_for(url: str, settings: Any, passphrase: str | None
                   ) -> tuple[str, bytes, bytes, str | None]:
    """(mode, salt, archive key, the database's KDF salt) to seal a backup of ``url``."""
    from engine.keys import crypto
    from engine.portable.target import key_candidates

    salt = os.urandom(16)
    if passphrase:
        return "passphrase", salt, archive_key("passphrase", salt, passphrase=passphrase), None
    meta = await _meta(url)
    keys = key_candidates(settings)(meta.get("kdf_salt"))
    check = meta.get("key_check")
    usable = [k for k in keys if check is None or crypto.key_matches(k, check)]
    if not usable:
        raise ArchiveError("no key that opens this database is available to seal the backup",
                           "set the key file or $PARLEY_KEY, or seal with --passphrase")
    return "key", salt, archive_key("key", salt, fernet_key=usable[0]), meta.get("kdf_salt")


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


async def record_backup(url: str, result: BackupResult) -> None:
    """Remember the last backup in the database itself (shown on the library screen)."""
    from sqlalchemy import delete, insert

    from engine.db import models as m

    value = json.dumps({"at": datetime.now(UTC).isoformat(), "path": result.path,
                        "encrypted": result.encrypted, "size": result.size})
    db = Database(create_engine(url))
    try:
        async with db.engine.begin() as conn:
            await conn.execute(delete(m.Meta).where(m.Meta.key == META_LAST_BACKUP))
            await conn.execute(insert(m.Meta).values(key=META_LAST_BACKUP, value=value))
    finally:
        await db.dispose()


async def last_backup(db: Database) -> dict[str, Any] | None:
    from engine.db import models as m

    async with db.read() as s:
        value = await s.scalar(select(m.Meta.value).where(m.Meta.key == META_LAST_BACKUP))
    try:
        return json.loads(value) if value else None
    except ValueError:
        return None
