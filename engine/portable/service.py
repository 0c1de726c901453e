"""``engine.backups``: the backup verbs front ends call (the TUI's "back up now")."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from engine.portable import backup as bk
from engine.portable.results import BackupResult

if TYPE_CHECKING:
    from engine.facade import Engine


@dataclass(frozen=True)
class LastBackup:
    at: datetime
    path: str
    encrypted: bool
    size: int


class Backups:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    async def last(self) -> LastBackup | None:
        """When and where this database was last backed up (None: never)."""
        assert self.engine.db is not None
        found = await bk.last_backup(self.engine.db, self.engine.user_id)
        if not found:
            return None
        try:
            return LastBackup(datetime.fromisoformat(found["at"]), str(found["path"]),
                              bool(found.get("encrypted")), int(found.get("size", 0)))
        except (KeyError, ValueError, TypeError):
            return None

    async def backup_now(self, path: Path | None = None, *,
                         passphrase: str | None = None, seal: bool = False) -> BackupResult:
        """A backup archive in ``path`` (default: the data folder's ``backups/``)."""
        from engine.config import data_dir

        settings = self.engine.settings
        url = settings.database_url()
        out = path or bk.default_path(data_dir() / "backups")
        if out.is_dir():
            out = bk.default_path(out)
        sealing = await bk.seal_for(url, settings, passphrase) if (seal or passphrase) else None
        result = await bk.backup(url, out, seal=sealing, settings=settings)
        await bk.record_backup(url, result, settings.user)
        return result
