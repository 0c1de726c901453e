"""The one place that picks the backend module for vector and keyword search."""

from __future__ import annotations

from types import ModuleType


def for_backend(backend: str) -> ModuleType:
    """``engine.db.sqlite_search`` or ``engine.db.pg_search`` (same functions in both)."""
    if backend == "postgresql":
        from engine.db import pg_search

        return pg_search
    from engine.db import sqlite_search

    return sqlite_search
