"""The watched folders of a user: add, list, remove."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.db import models as m
from engine.errors import NotFound, ParleyError, UsageError
from engine.types import WatchedFolderInfo

if TYPE_CHECKING:
    from engine.facade import Engine


def _info(row: m.WatchedFolder) -> WatchedFolderInfo:
    return WatchedFolderInfo(row.id, row.path, row.collection, tuple(row.include or ()),
                             tuple(row.exclude or ()), tuple(row.tags or ()), row.hidden,
                             row.last_sync_at, row.last_error, row.created_at)


class WatchFolders:
    """``engine.watch_folders``: the folders ``parley watch`` keeps in sync."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.db = engine._require_db()

    async def add(self, path: str | os.PathLike[str], *, collection: str | None = None,
                  include: Sequence[str] = (), exclude: Sequence[str] = (),
                  tags: Sequence[str] = (), hidden: bool = False) -> WatchedFolderInfo:
        """Remember a folder (resolved) to keep in sync with ``collection``. Raises
        ``UsageError`` for a path that is not a folder, ``ParleyError`` if already watched."""
        folder = Path(os.path.expanduser(os.fspath(path))).resolve()
        if not folder.is_dir():
            raise UsageError(f"{folder} is not a folder" if folder.exists()
                             else f"no folder at {folder}", "name an existing folder")
        name = (collection or self.engine.settings.retrieval.default_collection).strip()
        if not name:
            raise UsageError("the collection name is empty")
        try:
            async with self.db.write() as s:
                row = m.WatchedFolder(user_id=self.engine.user_id, path=str(folder),
                                      collection=name, include=list(include),
                                      exclude=list(exclude), tags=list(tags), hidden=hidden)
                s.add(row)
                await s.flush()
                return _info(row)
        except IntegrityError:
            raise ParleyError(f"{folder} is already watched for collection '{name}'",
                              "see 'parley watch list'") from None

    async def list(self) -> list[WatchedFolderInfo]:
        """Every watched folder, by path."""
        async with self.db.read() as s:
            rows = await s.scalars(select(m.WatchedFolder).where(
                m.WatchedFolder.user_id == self.engine.user_id).order_by(
                m.WatchedFolder.path, m.WatchedFolder.collection))
            return [_info(r) for r in rows]

    async def remove(self, target: int | str) -> list[WatchedFolderInfo]:
        """Stop watching (by id, or every entry of a path). Indexed documents stay."""
        async with self.db.write() as s:
            stmt = select(m.WatchedFolder).where(m.WatchedFolder.user_id == self.engine.user_id)
            if isinstance(target, int):
                stmt = stmt.where(m.WatchedFolder.id == target)
            else:
                folder = str(Path(os.path.expanduser(target)).resolve())
                stmt = stmt.where(m.WatchedFolder.path.in_({folder, os.path.abspath(target)}))
            rows = list(await s.scalars(stmt))
            if not rows:
                raise NotFound(f"no watched folder {target}", "see 'parley watch list'")
            for row in rows:
                await s.delete(row)
            return [_info(r) for r in rows]

    async def record(self, folder_id: int, error: str | None) -> None:
        """Note a sync of the folder (and its error, if it failed)."""
        from engine.db.coltypes import utcnow

        async with self.db.write() as s:
            row = await s.get(m.WatchedFolder, folder_id)
            if row is not None:
                row.last_sync_at, row.last_error = utcnow(), error
