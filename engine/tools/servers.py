"""Tool servers: Parley's built-in one and MCP servers, with their lifecycle.

An MCP server starts on first use (never when Parley starts), within
``tools.startup_timeout``. One that dies is restarted once, on its next use; dying again
marks it unavailable for the rest of the process, with the end of its stderr log in the
error. A stdio child gets the SDK's minimal environment plus its configured ``env``;
``${VAR}`` and ``${VAR:-default}`` in ``env`` values and HTTP ``headers`` read Parley's
environment, except Parley's own ``PARLEY_*`` variables, which never reach a server.
"""

from __future__ import annotations

import asyncio
import os
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.config import MCPServerSettings
from engine.errors import ConfigError
from engine.types import SearchHit

if TYPE_CHECKING:
    from engine.tools.trust import Trust

_VAR = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
LOG_TAIL = 400


@dataclass(frozen=True, slots=True)
class Tool:
    """A tool of a server: ``canonical`` (``server.tool``) is what policies match."""

    server: str
    name: str
    description: str
    parameters: dict[str, Any]
    read_only: bool | None = None

    @property
    def canonical(self) -> str:
        return f"{self.server}.{self.name}"


@dataclass(frozen=True, slots=True)
class ToolOutput:
    """What a call returned: ``status`` ok, error or timeout; ``hits`` for the built-in
    search (rendered as numbered sources by the caller)."""

    text: str
    status: str = "ok"
    hits: tuple[SearchHit, ...] = ()


def expand(value: str, where: str, environ: Mapping[str, str] | None = None) -> str:
    """``${VAR}`` / ``${VAR:-default}`` from the environment; a missing variable without a
    default is a ``ConfigError`` naming it."""
    environ = os.environ if environ is None else environ

    def one(match: re.Match[str]) -> str:
        name, default = match.group(1), match.group(2)
        if name.startswith("PARLEY_"):
            raise ConfigError(f"{where}: ${{{name}}} would hand Parley's own settings to a "
                              "tool server", "use another variable")
        if name in environ:
            return environ[name]
        if default is not None:
            return default
        raise ConfigError(f"{where}: the environment variable {name} is not set",
                          f"set {name}, or write ${{{name}:-default}}")

    return _VAR.sub(one, value)


def child_env(name: str, settings: MCPServerSettings) -> dict[str, str]:
    """The variables added to the SDK's minimal environment of a stdio child."""
    env: dict[str, str] = {}
    for key, value in settings.env.items():
        if key.startswith("PARLEY_"):
            raise ConfigError(f"mcp_servers.{name}.env.{key}: Parley's own variables never "
                              "reach a tool server", "remove it")
        env[key] = expand(value, f"mcp_servers.{name}.env.{key}")
    return env


def log_tail(path: Path | None) -> str:
    """The last lines of a server's stderr log, on one line."""
    if path is None or not path.exists():
        return ""
    with open(path, "rb") as handle:
        handle.seek(max(path.stat().st_size - LOG_TAIL, 0))
        text = handle.read().decode("utf-8", "replace")
    return " | ".join(line.strip() for line in text.splitlines()[-3:] if line.strip())


class MCPServer:
    """One configured MCP server, started on first use (see the module docstring)."""

    def __init__(self, name: str, settings: MCPServerSettings, *, startup_timeout: float,
                 log_dir: Path, trust: Trust | None = None) -> None:
        self.name = name
        self.trust = trust
        self.settings = settings
        self.kind = "http" if settings.url else "stdio"
        self.startup_timeout = startup_timeout
        self.log_path = log_dir / f"mcp-{name}.log" if self.kind == "stdio" else None
        self.state = "stopped"  # stopped | ready | unavailable | untrusted
        self.error: str | None = None
        self.start_ms: float | None = None
        self.restarts = 0
        self._conn: Any = None
        self._tools: list[Tool] | None = None
        self._lock = asyncio.Lock()

    async def _ensure(self) -> Any:
        async with self._lock:
            if self._conn is not None and self._conn.alive:
                return self._conn
            if self.state == "unavailable":
                raise ToolServerDown(self.error or f"the MCP server '{self.name}' is unavailable")
            if self._conn is not None:  # it died since the last call: one restart
                await self._stopped()
                if self.state == "unavailable":
                    raise ToolServerDown(self.error or "")
            await self._start()
            return self._conn

    async def _start(self) -> None:
        if self.trust is not None and self.kind == "stdio":
            from engine.tools.trust import ServerNotTrusted

            try:  # before anything runs: the user confirms a new command line first
                await self.trust.check(self.name, self.settings)
            except ServerNotTrusted as exc:
                self.state, self.error = "untrusted", str(exc)
                raise ToolServerDown(self.error) from None
        try:
            from engine.tools.mcp_client import MCPConnection  # the SDK loads here, first use
        except ImportError:
            self.state = "unavailable"
            self.error = (f"MCP server '{self.name}' is configured but the mcp package is not "
                          "installed: pip install 'parley[mcp]'")
            raise ToolServerDown(self.error) from None

        headers = {k: expand(v, f"mcp_servers.{self.name}.headers.{k}")
                   for k, v in self.settings.headers.items()}
        conn = MCPConnection(self.name, self.settings, env=child_env(self.name, self.settings),
                             headers=headers, log_path=self.log_path)
        started = time.monotonic()
        try:
            await conn.open(self.startup_timeout)
            tools = await asyncio.wait_for(conn.list_tools(), self.startup_timeout)
        except TimeoutError:
            await conn.aclose()
            self._fail(f"did not start within {self.startup_timeout:g} s")
        except Exception as exc:  # noqa: BLE001 - any failure to start is reported the same way
            await conn.aclose()
            self._fail(_describe(exc))
        self.start_ms = (time.monotonic() - started) * 1000
        self._conn, self.state, self.error = conn, "ready", None
        self._tools = [Tool(self.name, t.name, t.description, t.parameters, t.read_only)
                       for t in tools]

    def _fail(self, reason: str) -> None:
        tail = log_tail(self.log_path)
        where = f" (log {self.log_path}: {tail})" if tail else (
            f" (log: {self.log_path})" if self.log_path else "")
        self.state, self.error = "unavailable", f"MCP server '{self.name}' {reason}{where}"
        raise ToolServerDown(self.error)

    async def _stopped(self) -> None:
        """The connection died: restart once, then give up."""
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()
        if self.restarts >= 1:
            tail = log_tail(self.log_path)
            self.state = "unavailable"
            self.error = (f"MCP server '{self.name}' stopped again after a restart"
                          + (f" (log {self.log_path}: {tail})" if tail else ""))
        else:
            self.restarts += 1
            self.state = "stopped"

    async def tools(self) -> list[Tool]:
        await self._ensure()
        return list(self._tools or ())

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float,
                   context: Any = None) -> ToolOutput:
        from engine.tools.mcp_client import CallTimedOut, ServerGone

        conn = await self._ensure()
        try:
            result = await conn.call(tool, arguments, timeout)
        except CallTimedOut:
            return ToolOutput(f"the call did not finish within {timeout:g} s", "timeout")
        except ServerGone as exc:
            async with self._lock:
                await self._stopped()
            return ToolOutput(f"the MCP server '{self.name}' stopped during the call ({exc})",
                              "error")
        return ToolOutput(result.text, "error" if result.is_error else "ok")

    async def aclose(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.aclose()
        if self.state == "ready":
            self.state = "stopped"


class ToolServerDown(Exception):
    """A server could not start, or is unavailable after dying twice."""


def _describe(exc: BaseException) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"could not start: command not found ({exc.filename or exc})"
    if isinstance(exc, ConfigError):
        return exc.message
    group = getattr(exc, "exceptions", None)
    if group:
        return _describe(group[0])
    return f"could not start: {type(exc).__name__}: {exc}".rstrip(": ")
