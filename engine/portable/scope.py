"""Whose data a copy takes, and which target user each source user lands on.

- From SQLite, or from PostgreSQL as the schema owner: every user (``--only-user`` picks).
- From PostgreSQL as a team member: that member's own data only (row-level security shows
  nothing else worth copying; collections others share with them are not copied, and
  citations of their documents keep file, page and snippet but lose the link).
- Into PostgreSQL, a single source user lands on the connecting role's user
  (``session_user``), unless the owner copies in a user who already exists there under
  that name (restoring one member's backup). Several users land on their own names, which
  only the owner may do; a member is asked to pick one with ``--only-user``.
- Out of PostgreSQL into SQLite (``db copy`` only), your own data lands on the SQLite
  file's user (``_into_file``); other users keep their role names.
"""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.errors import NotFound
from engine.portable.access import Access
from engine.portable.plan import TablePlan
from engine.portable.results import CopyRefused


async def source_user_ids(conn: AsyncConnection, users: TablePlan, who: Access,
                          names: Sequence[str] | None) -> list[int] | None:
    """The source users to copy (None: all of them)."""
    if names:
        found = dict((await conn.execute(select(users.table.c.name, users.table.c.id).where(
            users.table.c.name.in_(list(names))))).all())
        missing = [n for n in names if n not in found]
        if missing:
            raise NotFound(f"the source has no user named '{missing[0]}'",
                           "user names are exact (the config key user, or --user)")
        others = [n for n in names if n != who.role]
        if not who.sees_all and others:
            raise CopyRefused(f"as team member '{who.role}' you can copy only your own data, "
                              f"not '{others[0]}'", "the database owner can copy any user")
        return [int(found[n]) for n in names]
    if who.sees_all:
        return None
    if who.user_id is None:
        raise CopyRefused(f"role '{who.role}' has no data in this Parley database",
                          f"ask the database owner to run: parley team add {who.role}")
    return [who.user_id]


async def renames(tconn: AsyncConnection | None, users: TablePlan, target: Access,
                  source_names: list[str], *, source: Access | None = None,
                  local_user: str | None = None) -> dict[str, str]:
    """Source user name -> target user name, for the names that change."""
    if not source_names:
        return {}
    if target.backend != "postgresql":
        return _into_file(source, source_names, local_user)
    role = str(target.role)
    if len(source_names) > 1:
        if not target.sees_all:
            raise CopyRefused(f"member '{role}' copies one user's data into a team database; "
                              f"the source holds {len(source_names)} users",
                              "pick one with --only-user NAME (it becomes your user), or ask "
                              "the database owner to copy everyone")
        return {}
    if not target.sees_all and target.user_id is None:
        raise CopyRefused(f"role '{role}' is not a member of this Parley database",
                          f"ask the database owner to run: parley team add {role}")
    name = source_names[0]
    if name == role:
        return {}
    if target.sees_all and tconn is not None and await tconn.scalar(
            select(users.table.c.id).where(users.table.c.name == name)) is not None:
        return {}  # the owner restores a member who is already on the team
    return {name: role}


def _into_file(source: Access | None, source_names: list[str],
               local_user: str | None) -> dict[str, str]:
    """Out of PostgreSQL into SQLite: your own data lands on the file's own user.

    On PostgreSQL you are your role; an SQLite file's user is the ``user:`` setting (by
    default your login name), which is who ``parley --db FILE`` opens as. So when the copy
    holds only the connecting role's own data (a member's copy, or the owner's
    ``--only-user`` naming themselves) that user is renamed to ``local_user``: the file
    opens as you, with the same key. Anyone else's data, and a whole team, keep their role
    names (each opens with ``--user ROLE``); backups never rename (``local_user`` None)."""
    if (local_user is None or source is None or source.backend != "postgresql"
            or len(source_names) != 1 or source_names[0] != source.role
            or source_names[0] == local_user):
        return {}
    return {source_names[0]: local_user}
