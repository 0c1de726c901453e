"""Restoring an archive: staged and checked first, then put in place.

Into a SQLite file that does not exist yet the staged database file itself is moved there
(bit-exact, checked against the manifest's sha256 again). Anywhere else (PostgreSQL, or a
database that already holds Parley data when ``--merge`` is given) it goes through
``db copy`` and its verification. The copy id is derived from the archive's checksum, so a
restore killed midway resumes when run again.
"""

from __future__ import annotations

import asyncio
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import inspect, select

from engine.db import schema
from engine.db.connect import Database, create_engine, mask_url, sqlite_path
from engine.portable.backup import _sha256, _sqlite_url, describe, move_into_place, stage
from engine.portable.plan import USERS, build_plans
from engine.portable.results import ArchiveError, CopyRefused, RestoreResult


async def _state(url: str, copy_id: str) -> tuple[bool, bool]:
    """(whether the target has any Parley data, whether this restore already started)."""
    from engine.portable import state as st
    from engine.portable.access import access, open_database

    db = open_database(url)
    try:
        async with db.engine.connect() as conn:
            tables = set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
            started = False
            if "parley_copy_state" in tables:  # this role's own restore of this archive
                who = await access(conn)
                started = await st.started(conn, st.runner_copy_id(copy_id, who),
                                           st.Runner.of(who))
            for plan in build_plans():
                if plan.name == USERS or plan.name not in tables:
                    continue
                if await conn.scalar(select(plan.table.c[plan.pk[0]]).limit(1)) is not None:
                    return True, started
            return False, started
    finally:
        await db.dispose()


async def restore(archive: Path, target_url: str, *, merge: bool,
                  key_for: Callable[[dict[str, str]], bytes], settings: Any = None,
                  progress: Callable[[str, int, int], None] | None = None) -> RestoreResult:
    started = time.perf_counter()
    target_file = sqlite_path(target_url)
    work_parent = target_file.parent if target_file is not None else None
    if work_parent is not None:
        work_parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".parley-restore-", dir=work_parent) as tmp:
        manifest, payload = await asyncio.to_thread(stage, archive, Path(tmp), key_for)
        revision = str(manifest.get("schema_revision"))
        schema.check_not_newer(revision)
        current, counts = await describe(payload)
        if current != revision or counts != manifest.get("tables"):
            raise ArchiveError(f"{archive}: the database inside does not match its manifest",
                               None)
        if revision != schema.head_revision():  # an older backup: bring the copy up to date
            staged = Database(create_engine(_sqlite_url(payload)))
            try:
                await schema.upgrade(staged)
            finally:
                await staged.dispose()
        copy_id = "restore-" + str(manifest["payload"]["sha256"])[:24]
        whole = target_file is not None and not target_file.exists()
        if whole:
            assert target_file is not None
            for side in ("-wal", "-shm"):
                Path(str(target_file) + side).unlink(missing_ok=True)
            await asyncio.to_thread(move_into_place, payload, target_file)
            if revision == schema.head_revision() and \
                    await asyncio.to_thread(_sha256, target_file) != manifest["payload"]["sha256"]:
                raise ArchiveError(f"the restored file {target_file} differs from the archive",
                                   None)
            return RestoreResult(str(archive), mask_url(target_url), revision, True, None,
                                 time.perf_counter() - started)
        has_data, resuming = await _state(target_url, copy_id)
        if has_data and not merge and not resuming:
            raise CopyRefused(f"the target {mask_url(target_url)} already holds Parley data",
                              "add --merge to add what is missing, or restore into an empty "
                              "database with --to URL")
        from engine.portable.copier import Copier

        report = await Copier(_sqlite_url(payload), target_url, merge=merge, settings=settings,
                              progress=progress, copy_id=copy_id).run()
    return RestoreResult(str(archive), mask_url(target_url), revision, False, report,
                         time.perf_counter() - started)
