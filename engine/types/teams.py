"""Teams on PostgreSQL: members and shared collections (``engine.teams``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class TeamMember:
    """A user of a PostgreSQL team database (``parley team list``)."""

    name: str
    user_id: int | None  # None: the role is in parley_member but has no user row yet
    member: bool  # holds parley_member (may use Parley)
    can_login: bool
    owner: bool  # the schema owner
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class ShareInfo:
    """A collection shared by its owner with one user (``with_user``) or everyone (None)."""

    collection: str
    owner: str
    with_user: str | None
    write: bool
    created_at: datetime
