"""A PostgreSQL team on the embedded server: an owner that is not a superuser, members
with their own roles and key files, the real CLI run as each of them, raw SQL as each.

The owner role gets CREATEROLE and the admin option on ``parley_member`` (as the README's
setup gives it); the superuser only creates the owner, the database and the pgvector
extension, as a DBA would.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
from sqlalchemy.engine import make_url

from engine import Engine, Settings, load_settings
from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]


@dataclass
class Person:
    """One role: its URL, its own PARLEY_HOME (key file) and its CLI."""

    role: str
    url: str  # postgresql+asyncpg://role@.../db
    home: Path
    extra_env: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
        env.update(PARLEY_HOME=str(self.home), PYTHONPATH=str(REPO), **self.extra_env)
        return env

    def cli(self, *args: str, stdin: str | None = None,
            config: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
        pre: list[str] = []
        if config is not None:
            path = self.home / "config.yaml"
            path.write_text(json.dumps(config))  # JSON is YAML
            pre = ["--config", str(path)]
        return subprocess.run([sys.executable, "-m", "tui.cli", *pre, "--db", self.url, *args],
                              cwd=REPO, env=self.env(), input=stdin, capture_output=True,
                              text=True, timeout=300)

    def steps(self, *args: str, stdin: str | None = None,
              config: dict[str, Any] | None = None) -> subprocess.CompletedProcess[str]:
        """What ``cli`` does, run in this process (the steps of a scenario; ``cli`` for what
        a member meets as a process: refusals, exit codes)."""
        pre: list[str] = []
        if config is not None:
            path = self.home / "config.yaml"
            path.write_text(json.dumps(config))
            pre = ["--config", str(path)]
        return run_cli(*pre, "--db", self.url, *args, home=self.home, env=self.extra_env,
                       stdin=stdin, timeout=300)

    def settings(self) -> Settings:
        return load_settings(overrides={"database": {"url": self.url}, "crypto": {
            "key_file": str(self.home / "key")}}, environ={})

    def engine(self) -> Engine:
        return Engine(self.settings())

    async def sql(self) -> asyncpg.Connection:
        dsn = make_url(self.url).set(drivername="postgresql")
        return await asyncpg.connect(dsn.render_as_string(hide_password=False))


class TeamDatabase:
    """A fresh database owned by a fresh non-superuser owner role."""

    def __init__(self, admin_url: str, base: Path) -> None:
        self.admin_url = admin_url
        self.base = base
        tag = uuid.uuid4().hex[:8]
        self.name = f"parley_team_{tag}"
        self.tag = tag
        self.roles: list[str] = []

    def _dsn(self, database: str, user: str | None = None) -> str:
        url = make_url(self.admin_url).set(drivername="postgresql", database=database)
        if user is not None:
            url = url.set(username=user, password=None)
        return url.render_as_string(hide_password=False)

    def person(self, role: str) -> Person:
        url = make_url(self.admin_url).set(drivername="postgresql+asyncpg", database=self.name,
                                           username=role, password=None)
        home = self.base / role
        home.mkdir(exist_ok=True)
        return Person(role, url.render_as_string(hide_password=False), home)

    def role(self, short: str) -> str:
        name = f"{short}_{self.tag}"
        self.roles.append(name)
        return name

    async def superuser(self, database: str | None = None) -> asyncpg.Connection:
        return await asyncpg.connect(self._dsn(database or self.name))

    async def create(self) -> Person:
        owner = self.role("owner")
        conn = await asyncpg.connect(self._dsn("postgres"))
        try:
            await conn.execute(f'CREATE ROLE "{owner}" LOGIN CREATEROLE')
            await conn.execute("DO $$ BEGIN IF NOT EXISTS (SELECT FROM pg_roles WHERE "
                               "rolname = 'parley_member') THEN CREATE ROLE parley_member "
                               "NOLOGIN; END IF; END $$")
            await conn.execute(f'GRANT parley_member TO "{owner}" WITH ADMIN TRUE, '
                               "INHERIT FALSE, SET FALSE")
            await conn.execute(f'CREATE DATABASE "{self.name}" OWNER "{owner}"')
        finally:
            await conn.close()
        conn = await self.superuser()
        try:
            await conn.execute("CREATE EXTENSION vector")
        finally:
            await conn.close()
        return self.person(owner)

    async def drop(self) -> None:
        conn = await asyncpg.connect(self._dsn("postgres"))
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            for role in reversed(self.roles):
                await conn.execute(f'DROP ROLE IF EXISTS "{role}"')
        finally:
            await conn.close()


@asynccontextmanager
async def member_database(admin_url: str, base: Path) -> AsyncIterator[str]:
    """A migrated team database and the URL of a member of it (not its owner).

    With ``TEST_PG_AS_MEMBER=1`` the shared ``database_url`` fixture hands this URL to
    every PostgreSQL test, so the whole suite runs under the row-level security policies."""
    db = TeamDatabase(admin_url, base)
    owner = await db.create()
    try:
        async with Engine(owner.settings(), migrate=False) as admin:
            await admin.upgrade()
        member = db.role("member")
        async with owner.engine() as engine:
            await engine.team.add(member, create=True)
        yield db.person(member).url
    finally:
        await db.drop()
