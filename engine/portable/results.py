"""What ``db copy``, ``backup``, ``restore`` and ``db check`` return (plain dataclasses)."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.errors import ParleyError


class CopyRefused(ParleyError):
    """The target cannot take this copy as it stands (revision, key, data already there)."""


class VerificationFailed(ParleyError):
    """Source and target differ after a copy or restore."""


class ArchiveError(ParleyError):
    """A backup archive is truncated, tampered with, or sealed with another key."""


@dataclass(frozen=True)
class TableCount:
    table: str
    source_rows: int
    copied: int = 0
    skipped: int = 0
    target_rows: int | None = None
    source_digest: str | None = None
    target_digest: str | None = None

    @property
    def ok(self) -> bool:
        return (self.target_rows is None or self.target_rows == self.source_rows) and \
            self.source_digest == self.target_digest


@dataclass(frozen=True)
class CopyReport:
    copy_id: str
    source: str
    target: str
    tables: list[TableCount]
    dry_run: bool = False
    resumed: bool = False
    merged: bool = False
    created_schema: bool = False
    ids_shifted: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    new_rows: int = 0  # written by this run (a resumed or repeated copy writes fewer)
    phases: dict[str, float] = field(default_factory=dict)  # seconds: rows, indexes, verify
    scope: str = "the whole database"  # whose rows: a team member copies only their own
    renamed: dict[str, str] = field(default_factory=dict)  # source user -> target user

    @property
    def rows(self) -> int:
        return sum(t.copied for t in self.tables)


@dataclass(frozen=True)
class CheckProblem:
    check: str
    detail: str
    repair: str


@dataclass(frozen=True)
class CheckReport:
    backend: str
    url: str
    checks: list[str]
    problems: list[CheckProblem]
    scope: str = "the whole database"  # a team member checks what they can see

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class BackupResult:
    path: str
    revision: str
    encrypted: bool
    size: int
    sha256: str
    rows: dict[str, int]
    seconds: float


@dataclass(frozen=True)
class RestoreResult:
    archive: str
    target: str
    revision: str
    whole_file: bool
    report: CopyReport | None
    seconds: float
