"""Who the user is: the database role on PostgreSQL, the ``user:`` setting on SQLite.

On PostgreSQL the row-level security policies admit rows by ``session_user``, so the
identity Parley shows must be that same role: a ``user:`` setting (or ``--user``) naming
anyone else is refused, naming both, before anything is read.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.engine import make_url

from engine.config import Settings
from engine.db.connect import Database
from engine.errors import ConfigError, DatabaseError


async def session_role(db: Database) -> str:
    """The role this connection authenticated as (PostgreSQL only)."""
    async with db.read() as s:
        return str(await s.scalar(text("SELECT session_user")))


async def resolve(db: Database, settings: Settings) -> Settings:
    """The settings with ``user`` set to who the connection really is.

    On SQLite nothing changes. On PostgreSQL ``user`` becomes the connecting role; a
    ``user:`` given in the config file, the environment or ``--user`` that names another
    role is a ``ConfigError``.
    """
    if db.backend != "postgresql":
        return settings
    role = await session_role(db)
    origin = settings.sources.get("user")
    if origin is not None and settings.user != role:
        where = {"flag": "--user", "env": "PARLEY_USER"}.get(origin, "user: in the config")
        raise ConfigError(
            f"{where} says '{settings.user}' but this database connection is role '{role}'",
            "on PostgreSQL you are the role you connect as: remove the user setting, or "
            "connect with that role's own credentials in database.url")
    if settings.user == role:
        return settings
    updated = settings.model_copy(update={"user": role})
    updated._sources = settings._sources
    updated._config_path = settings._config_path
    return updated


def no_access_error(url: str, detail: str) -> DatabaseError | None:
    """The error for a role that may connect but holds no grant on Parley's tables."""
    if "permission denied" not in detail:
        return None
    role = make_url(url).username or "this role"
    return DatabaseError(
        f"role '{role}' may not use the Parley database at {url} ({detail})",
        f"ask the database owner to run: parley team add {role}")


async def ensure_user(db: Database, name: str) -> int:
    """The user's id, creating the row on first use.

    On PostgreSQL only the database owner creates users (``parley team add``): a role the
    owner has not added gets an error naming that command.
    """
    from sqlalchemy import select
    from sqlalchemy.exc import DBAPIError

    from engine.db import models as m

    async with db.read() as s:
        found = await s.scalar(select(m.User.id).where(m.User.name == name))
    if found is not None:
        return int(found)
    try:
        async with db.write() as s:
            user = m.User(name=name)
            s.add(user)
            await s.flush()
            return int(user.id)
    except DBAPIError as exc:
        detail = str(exc.orig or exc).strip().splitlines()[0]
        if "row-level security" not in detail and "permission denied" not in detail:
            raise
        raise DatabaseError(f"role '{name}' is not a member of this Parley database",
                            f"ask the database owner to run: parley team add {name}") from None
