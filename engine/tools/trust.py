"""Trust on first use for local MCP servers: a command line runs once the user said yes.

A stdio server runs a program with the user's rights. Before a server's command line
(command, arguments and the *names* of its ``env``) first runs, the front end shows it and
asks (``asker``); the answer is stored per user as a SHA-256 of that command line, so a
changed command line, say an edited config or a swapped script, asks again. Servers with
``trusted: true`` in the config, HTTP servers (they run nothing here) and a caller that
trusts on the user's behalf (``trust_all``: ``--trust-servers``) are not asked. With no
one to ask, an untrusted command is refused: ``ServerNotTrusted`` says how to confirm it.
A "no" holds for the rest of the process, until ``reconsider``.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import shlex
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from sqlalchemy import delete, select

from engine.config import MCPServerSettings
from engine.db import models as m
from engine.types import TrustRequest

if TYPE_CHECKING:
    from engine.facade import Engine

TrustAsker = Callable[[TrustRequest], Awaitable[bool]]


class ServerNotTrusted(Exception):
    """The user has not confirmed this command line (or said no)."""


def digest(settings: MCPServerSettings) -> str:
    """The hash of a server's command line: command, args and env names (not values)."""
    line = {"command": settings.command, "args": list(settings.args),
            "env": sorted(settings.env)}
    return hashlib.sha256(json.dumps(line, sort_keys=True).encode()).hexdigest()


def command_line(settings: MCPServerSettings) -> str:
    """The command as a person would type it."""
    return shlex.join([settings.command or "", *settings.args])


class Trust:
    """The trusted command lines of one engine's user (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.asker: TrustAsker | None = None
        """Asks the user; set by the front end (None: nobody to ask)."""
        self.trust_all = False
        """Trust every command line without asking or storing (``--trust-servers``)."""
        self._ok: set[tuple[str, str]] = set()
        self._declined: set[tuple[str, str]] = set()
        self._lock = asyncio.Lock()  # one question at a time, servers start concurrently

    def needed(self, settings: MCPServerSettings) -> bool:
        return bool(settings.command) and not settings.trusted and not self.trust_all

    async def check(self, name: str, settings: MCPServerSettings) -> None:
        """Return when the server's command may run; raise ``ServerNotTrusted`` otherwise."""
        if not self.needed(settings):
            return
        key = (name, digest(settings))
        if key in self._ok:
            return
        async with self._lock:
            known = await self._stored(name)
            if key[1] in known:
                self._ok.add(key)
                return
            line = command_line(settings)
            if key in self._declined or self.asker is None:
                raise ServerNotTrusted(self._refusal(name, line, bool(known),
                                                     declined=key in self._declined))
            request = TrustRequest(name, line, tuple(sorted(settings.env)),
                                   settings.cwd, changed=bool(known))
            if not await self.asker(request):
                self._declined.add(key)
                raise ServerNotTrusted(self._refusal(name, line, bool(known), declined=True))
            await self._store(name, key[1], settings.command or "")
            self._ok.add(key)

    def reconsider(self, name: str) -> None:
        """Ask again about ``name`` (after a "no") the next time it is about to start."""
        self._declined = {k for k in self._declined if k[0] != name}

    async def forget(self, name: str | None = None) -> int:
        """Drop stored trust (of one server, or all): the next start asks again."""
        self._ok = {k for k in self._ok if name is not None and k[0] != name}
        async with self.engine._require_db().write() as s:
            stmt = delete(m.ToolServerTrust).where(
                m.ToolServerTrust.user_id == self.engine.user_id)
            if name is not None:
                stmt = stmt.where(m.ToolServerTrust.server == name)
            return (await s.execute(stmt)).rowcount or 0

    async def _stored(self, name: str) -> set[str]:
        async with self.engine._require_db().read() as s:
            return set(await s.scalars(select(m.ToolServerTrust.digest).where(
                m.ToolServerTrust.user_id == self.engine.user_id,
                m.ToolServerTrust.server == name)))

    async def _store(self, name: str, value: str, command: str) -> None:
        user = self.engine.user_id
        async with self.engine._require_db().write() as s:
            # Only the newest command line of a server stays trusted.
            await s.execute(delete(m.ToolServerTrust).where(
                m.ToolServerTrust.user_id == user, m.ToolServerTrust.server == name))
            s.add(m.ToolServerTrust(user_id=user, server=name, digest=value))
            s.add(m.AuditLog(user_id=user, actor=self.engine.settings.user,
                             action="mcp.trust", target=f"{name}: {command}"))

    @staticmethod
    def _refusal(name: str, line: str, changed: bool, *, declined: bool) -> str:
        what = "its command line changed since you trusted it" if changed else \
            "its command has not been confirmed yet"
        if declined:
            return f"MCP server '{name}' was not started: you did not trust `{line}`"
        return (f"MCP server '{name}' was not started: {what} (`{line}`). Confirm it on a "
                "terminal (parley tools list), pass --trust-servers, or set "
                f"mcp_servers.{name}.trusted: true")
