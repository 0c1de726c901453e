"""The team verbs (``engine.team``): members for the schema owner, shares for collection owners.

``add``/``remove``/``members`` are the schema owner's: they create login roles (when
asked), grant or revoke ``parley_member`` and create or purge the user row. Anyone else gets
a ``ParleyError`` before anything is changed. ``share``/``unshare`` are each collection
owner's, for their own collections. Every change is written to the audit log. PostgreSQL
only: on SQLite these raise ``UsageError``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import delete, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.errors import NotFound, ParleyError, UsageError
from engine.ingest.store import audit
from engine.teams import shares
from engine.teams.rls import MEMBER_ROLE
from engine.types import ShareInfo, TeamMember

if TYPE_CHECKING:
    from engine.facade import Engine

_ROLE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.@-]{0,62}$")


def check_role(role: str) -> str:
    """A role name Parley accepts (quoted in every statement all the same)."""
    if not _ROLE.match(role):
        raise UsageError(f"invalid role name {role!r}",
                         "use letters, digits, '_', '.', '@' or '-' (at most 63)")
    return role


def _detail(exc: DBAPIError) -> str:
    return str(exc.orig or exc).strip().splitlines()[0]


class Team:
    """Team administration over one open engine (``engine.team``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.db = engine._require_db()

    def _require_postgres(self, what: str) -> None:
        if self.db.backend != "postgresql":
            raise UsageError(f"{what} needs PostgreSQL: this SQLite database has one user",
                             "point database.url at a PostgreSQL database")

    async def _require_owner(self, s: AsyncSession) -> None:
        row = (await s.execute(text(
            "SELECT session_user, pg_get_userbyid(c.relowner), "
            "pg_has_role(session_user, c.relowner, 'MEMBER') "
            "FROM pg_class c WHERE c.oid = 'users'::regclass"))).one()
        if not row[2]:
            raise ParleyError(f"only the database owner ({row[1]}) manages the team; you are "
                              f"'{row[0]}'", f"ask {row[1]} to run this command")

    # -- members ----------------------------------------------------------------------------
    async def members(self) -> list[TeamMember]:
        """Every user row and every role holding ``parley_member``, by name."""
        self._require_postgres("parley team")
        async with self.db.read() as s:
            await self._require_owner(s)
            rows = await s.execute(text(
                "WITH grp AS (SELECT oid FROM pg_roles WHERE rolname = :grp), "
                "names AS (SELECT name FROM users UNION SELECT r.rolname FROM pg_auth_members a "
                "JOIN pg_roles r ON r.oid = a.member WHERE a.roleid = (SELECT oid FROM grp)) "
                "SELECT n.name, u.id, u.created_at, r.rolcanlogin, "
                "coalesce(pg_has_role(r.oid, (SELECT oid FROM grp), 'MEMBER'), false), "
                "coalesce(pg_has_role(r.oid, c.relowner, 'MEMBER'), false) "
                "FROM names n LEFT JOIN users u ON u.name = n.name "
                "LEFT JOIN pg_roles r ON r.rolname = n.name "
                "CROSS JOIN (SELECT relowner FROM pg_class WHERE oid = 'users'::regclass) c "
                "ORDER BY n.name"), {"grp": MEMBER_ROLE})
            return [TeamMember(name=name, user_id=uid, member=bool(member) or bool(owner),
                               can_login=bool(login), owner=bool(owner), created_at=created)
                    for name, uid, created, login, member, owner in rows]

    async def add(self, role: str, *, create: bool = False,
                  password: str | None = None) -> TeamMember:
        """Admit ``role``: create it (``create``, a login role, with ``password`` if given),
        grant it ``parley_member`` and create its user row. Idempotent."""
        self._require_postgres("parley team add")
        role = check_role(role)
        if password is not None and not create:
            raise UsageError("a password is set only when creating the role (--create)",
                             "change an existing role's password with ALTER ROLE")
        try:
            async with self.db.write() as s:
                await self._require_owner(s)
                exists = await s.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                        {"r": role})
                if create and exists:
                    raise ParleyError(f"role '{role}' already exists",
                                      f"drop --create to add it: parley team add {role}")
                if not create and not exists:
                    raise NotFound(f"there is no database role '{role}'",
                                   f"create it with: parley team add {role} --create")
                if create:
                    statement = await s.scalar(text(
                        "SELECT format('CREATE ROLE %I LOGIN PASSWORD %L', "
                        "CAST(:r AS text), CAST(:p AS text))" if password is not None else
                        "SELECT format('CREATE ROLE %I LOGIN', CAST(:r AS text))"),
                        {"r": role, "p": password})
                    await s.execute(text(statement))
                await s.execute(text(f'GRANT {MEMBER_ROLE} TO "{role}"'))
                if await s.scalar(select(m.User.id).where(m.User.name == role)) is None:
                    s.add(m.User(name=role))
                await audit(s, self.engine.user_id, self.engine.settings.user, "team.add", role,
                            {"created_role": create})
        except DBAPIError as exc:
            raise ParleyError(f"cannot add '{role}': {_detail(exc)}",
                              "the owner needs CREATEROLE and the admin option on "
                              f"{MEMBER_ROLE} (see the README's team setup)") from None
        return next(item for item in await self.members() if item.name == role)

    async def remove(self, role: str, *, purge: bool = False) -> int:
        """Revoke ``parley_member`` from ``role``. With ``purge`` also delete its user row and
        with it every row it owns (sessions, messages, collections, documents, usage).
        The role itself stays. Returns the number of user rows deleted (0 or 1)."""
        self._require_postgres("parley team remove")
        role = check_role(role)
        try:
            async with self.db.write() as s:
                await self._require_owner(s)
                if role == self.engine.settings.user:
                    raise UsageError("the owner cannot remove itself from the team",
                                     "run this as the owner for another role")
                known = await s.scalar(select(m.User.id).where(m.User.name == role))
                exists = await s.scalar(text("SELECT 1 FROM pg_roles WHERE rolname = :r"),
                                        {"r": role})
                if known is None and not exists:
                    raise NotFound(f"'{role}' is not in the team", "see: parley team list")
                if exists:
                    await s.execute(text(f'REVOKE {MEMBER_ROLE} FROM "{role}"'))
                deleted = 0
                if purge and known is not None:
                    # Foreign keys cascade to every row of the user (referential actions
                    # are not subject to row-level security).
                    deleted = (await s.execute(delete(m.User).where(m.User.id == known))
                               ).rowcount or 0
                await audit(s, self.engine.user_id, self.engine.settings.user, "team.remove",
                            role, {"purged": bool(deleted)})
        except DBAPIError as exc:
            raise ParleyError(f"cannot remove '{role}': {_detail(exc)}",
                              f"the owner needs the admin option on {MEMBER_ROLE}") from None
        return deleted

    # -- shares -----------------------------------------------------------------------------
    async def _own_collection(self, s: AsyncSession, name: str) -> m.Collection:
        row = await s.scalar(select(m.Collection).where(
            m.Collection.user_id == self.engine.user_id, m.Collection.name == name))
        if row is None:
            found = [v for v in await shares.visible(s, self.engine.user_id)
                     if v.owner is not None and name in (v.label, v.row.name)]
            if found:
                raise ParleyError(f"collection '{found[0].label}' belongs to {found[0].owner}: "
                                  "only its owner shares it", f"ask {found[0].owner}")
            raise NotFound(f"you have no collection named '{name}'",
                           "see 'parley collections list'")
        return row

    async def _grantee(self, s: AsyncSession, role: str | None) -> int | None:
        if role is None:
            return None
        uid = await s.scalar(select(m.User.id).where(m.User.name == role))
        if uid is None:
            raise NotFound(f"'{role}' is not in the team", "see: parley team list")
        if uid == self.engine.user_id:
            raise UsageError("a collection is always shared with its owner",
                             "name another member, or --all")
        return int(uid)

    async def share(self, collection: str, *, with_user: str | None,
                    write: bool = False) -> ShareInfo:
        """Share one of your collections with a member (or everyone: ``with_user=None``),
        read-only or with ``write`` (ingest and remove documents). Sharing again updates
        the access."""
        self._require_postgres("sharing a collection")
        async with self.db.write() as s:
            row = await self._own_collection(s, collection)
            grantee = await self._grantee(s, with_user)
            share = await s.scalar(select(m.CollectionShare).where(
                m.CollectionShare.collection_id == row.id,
                m.CollectionShare.grantee_id.is_(None) if grantee is None
                else m.CollectionShare.grantee_id == grantee))
            if share is None:
                share = m.CollectionShare(collection_id=row.id, owner_id=self.engine.user_id,
                                          grantee_id=grantee, can_write=write)
                s.add(share)
            share.can_write = write
            await s.flush()
            await audit(s, self.engine.user_id, self.engine.settings.user, "collection.share",
                        row.name, {"with": with_user or "*", "write": write})
            return ShareInfo(row.name, self.engine.settings.user, with_user, write,
                             share.created_at)

    async def unshare(self, collection: str, *, with_user: str | None) -> int:
        """Stop sharing with a member, or (``with_user=None``) with everyone it is shared
        with. Returns how many shares ended."""
        self._require_postgres("sharing a collection")
        async with self.db.write() as s:
            row = await self._own_collection(s, collection)
            stmt = delete(m.CollectionShare).where(m.CollectionShare.collection_id == row.id)
            if with_user is not None:
                grantee = await self._grantee(s, with_user)
                stmt = stmt.where(m.CollectionShare.grantee_id == grantee)
            ended = (await s.execute(stmt)).rowcount or 0
            await audit(s, self.engine.user_id, self.engine.settings.user, "collection.unshare",
                        row.name, {"with": with_user or "*", "ended": ended})
        return ended

    async def shares(self) -> list[ShareInfo]:
        """The shares of your collections, by collection."""
        if self.db.backend != "postgresql":
            return []
        async with self.db.read() as s:
            grantee = m.User.__table__.alias("grantee")
            rows = await s.execute(
                select(m.Collection.name, grantee.c.name, m.CollectionShare.can_write,
                       m.CollectionShare.created_at)
                .join(m.Collection, m.Collection.id == m.CollectionShare.collection_id)
                .outerjoin(grantee, grantee.c.id == m.CollectionShare.grantee_id)
                .where(m.CollectionShare.owner_id == self.engine.user_id)
                .order_by(m.Collection.name, grantee.c.name))
            return [ShareInfo(name, self.engine.settings.user, who, bool(write), created)
                    for name, who, write, created in rows]
