"""Column types that hide backend and encryption details from business code.

- ``EncryptedText``: stored as a Fernet token, read back as ``str``. The cipher hangs on the
  SQLAlchemy dialect instance of each engine (``dialect.parley_cipher``), so two engines
  with two keys never mix, and no global state is needed.
- ``Embedding``: a float32 vector; pgvector's ``vector`` on PostgreSQL (bound as a numpy
  array through asyncpg's binary codec, 16x faster than pgvector's text binding), a float32
  BLOB on SQLite (the source of truth the vec0 index is built from).
- ``UTCDateTime``: timezone-aware UTC datetimes on both backends (SQLite stores naive).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Protocol

import numpy as np
from pgvector.sqlalchemy import VECTOR
from sqlalchemy import DateTime, LargeBinary, Text
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

from engine.errors import KeyMissing


class Cipher(Protocol):
    """What the encrypted column needs from ``engine.crypto``."""

    def encrypt(self, plaintext: str) -> str: ...
    def decrypt(self, token: str) -> str: ...


class UnreadableText(str):
    """Returned in place of a value whose token cannot be decrypted.

    It is a ``str`` (so listing a session never crashes on one bad row), with ``failed`` set
    so verbs can report which value is unreadable.
    """

    failed = True

    def __new__(cls, reason: str) -> UnreadableText:
        return super().__new__(cls, f"[unreadable: {reason}]")


def dialect_cipher(dialect: Dialect) -> Cipher:
    cipher = getattr(dialect, "parley_cipher", None)
    if cipher is None:
        raise KeyMissing("no encryption key is loaded for this database",
                         "open the database through engine.Engine")
    return cipher


class EncryptedText(TypeDecorator[str]):
    """Text stored as a Fernet token."""

    impl = Text
    cache_ok = True

    def process_bind_param(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        return dialect_cipher(dialect).encrypt(value)

    def process_result_value(self, value: str | None, dialect: Dialect) -> str | None:
        if value is None:
            return None
        try:
            return dialect_cipher(dialect).decrypt(value)
        except KeyMissing:
            raise
        except Exception as exc:  # one corrupted value must not hide the rest of a session
            return UnreadableText(type(exc).__name__ if not str(exc) else str(exc))


class _BinaryVector(VECTOR):
    """pgvector's type without its text bind processor: asyncpg's binary codec takes arrays."""

    cache_ok = True

    def bind_processor(self, dialect: Dialect) -> None:  # type: ignore[override]
        return None


class Embedding(TypeDecorator[np.ndarray]):
    """A float32 vector of any dimension (the dimension lives on the collection)."""

    impl = LargeBinary
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(_BinaryVector())
        return dialect.type_descriptor(LargeBinary())

    def process_bind_param(self, value: Any, dialect: Dialect) -> Any:
        if value is None:
            return None
        array = np.asarray(value, dtype=np.float32)
        return array if dialect.name == "postgresql" else array.tobytes()

    def process_result_value(self, value: Any, dialect: Dialect) -> np.ndarray | None:
        if value is None:
            return None
        if isinstance(value, bytes | memoryview):
            return np.frombuffer(value, dtype=np.float32)
        if hasattr(value, "to_numpy"):
            return value.to_numpy().astype(np.float32, copy=False)
        return np.asarray(value, dtype=np.float32)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on both backends."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)
