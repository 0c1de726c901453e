"""Row-level security on PostgreSQL (installed by migration ``0006_teams``)."""

from __future__ import annotations

from collections.abc import Callable


def install(execute: Callable[[str], object]) -> None:
    """Create the policies, functions, group role and grants."""


def uninstall(execute: Callable[[str], object]) -> None:
    """Remove what ``install`` created (the group role stays: it is cluster-wide)."""
