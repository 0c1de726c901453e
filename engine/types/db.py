"""The database: where its schema stands, and which keyword ranking it uses."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where the database schema stands relative to this version of Parley."""

    backend: str  # "sqlite" or "postgresql"
    url: str  # with any password masked
    current: str | None  # the applied Alembic revision, None for an empty database
    head: str  # the revision this code expects
    up_to_date: bool


@dataclass(frozen=True, slots=True)
class SchemaUpgraded:
    """The embedded database was upgraded when it was opened."""

    from_revision: str
    to_revision: str
    backup: str | None  # the copy taken before, if any


@dataclass(frozen=True, slots=True)
class KeywordSearchInfo:
    """Which keyword ranking a database uses, and why (``parley db current``/``config show``).

    ``method``: ``fts5`` (SQLite), ``pg_textsearch`` (PostgreSQL with the BM25 index) or
    ``sql-bm25`` (PostgreSQL without it: exact BM25 computed in SQL)."""

    method: str
    detail: str
