"""Encryption keys: which key opens the database, and key rotation (``engine.keys``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class RotationProgress:
    """Progress of ``parley key rotate``: sent after each batch."""

    phase: str  # "rotate" (re-encrypting) | "verify" (checking nothing needs the old key)
    done: int  # rows visited in this phase
    total: int


@dataclass(frozen=True, slots=True)
class RotationState:
    """An unfinished key rotation, as recorded in the database."""

    phase: str  # "prepare" | "rotate" | "verify" | "retire"
    done: int
    total: int
    rewritten: int
    started_at: datetime
    new_key_location: str  # "key file" or "$NAME"


@dataclass(frozen=True, slots=True)
class RotationResult:
    """A finished key rotation."""

    rewritten: int  # values re-encrypted under the new key
    unreadable: int  # values no key could decrypt, left as they were
    seconds: float
    resumed: bool
    new_key_location: str


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """Which key opens the database, and whether a rotation is unfinished."""

    source: str | None  # where the key came from, None when none was found
    key_file: str
    key_file_exists: bool
    matches: bool  # the key opens this database
    problem: str | None  # why it does not, in one line
    keys_loaded: int  # more than one while a rotation is unfinished
    encrypted_columns: tuple[str, ...]
    encrypted_values: int
    rotation: RotationState | None = None
    last_rotated_at: datetime | None = None
