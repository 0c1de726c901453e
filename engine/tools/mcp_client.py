"""MCP servers through the official SDK: the only module that imports ``mcp``.

It is imported when a server starts, never at ``import engine``: the SDK takes seconds to
import and first paint must not pay for it.

A connection lives in a task of its own that enters the SDK's ``Client`` and exits it
(anyio requires both in the same task); calls come from any task of the same loop. A
stdio child runs with the SDK's minimal environment (HOME, LOGNAME, PATH, SHELL, TERM,
USER) plus the server's ``env``, and its stderr goes to a log file. Tool errors are
results (``is_error``), not exceptions; ``ServerGone`` means the connection died.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from mcp import Client, MCPError, StdioServerParameters
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client
from mcp.types import Implementation

from engine.config import MCPServerSettings

_TIMEOUT_CODE = -32001
_CLOSED_CODE = -32000
CLIENT_INFO = Implementation(name="parley", version="0.1.0")


class ServerGone(Exception):
    """The connection to the server broke (the process died, the socket closed)."""


class CallTimedOut(Exception):
    """The call did not answer within its timeout."""


@dataclass(frozen=True, slots=True)
class RemoteTool:
    name: str
    description: str
    parameters: dict[str, Any]
    read_only: bool | None


@dataclass(frozen=True, slots=True)
class RemoteResult:
    text: str
    is_error: bool


class MCPConnection:
    """One open connection to one MCP server (see the module docstring)."""

    def __init__(self, name: str, settings: MCPServerSettings, *, env: dict[str, str],
                 headers: dict[str, str], log_path: Path | None) -> None:
        self.name = name
        self._settings = settings
        self._env = env
        self._headers = headers
        self._log_path = log_path
        self._client: Any = None
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._log: IO[str] | None = None

    @property
    def alive(self) -> bool:
        return self._client is not None and self._task is not None and not self._task.done()

    async def open(self, timeout: float) -> None:
        """Start the server (or connect to it) and wait for the handshake."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        # Read whatever ends it, so a failure after we stopped waiting is not reported twice.
        ready.add_done_callback(lambda f: f.cancelled() or f.exception())
        self._task = asyncio.create_task(self._own(ready), name=f"mcp-{self.name}")
        try:
            await asyncio.wait_for(asyncio.shield(ready), timeout)
        except BaseException:
            # Still starting: cancel now (the SDK ends a child it spawned) instead of
            # waiting for a handshake that is not coming.
            task, self._task = self._task, None
            self._stop.set()
            task.cancel()
            with contextlib.suppress(BaseException):
                await task
            raise

    def _transport(self) -> Any:
        settings = self._settings
        if settings.url:
            import httpx2

            http = httpx2.AsyncClient(headers=self._headers,
                                      timeout=httpx2.Timeout(30.0, read=300.0))
            return streamable_http_client(settings.url, http_client=http), http
        params = StdioServerParameters(
            command=settings.command or "", args=[os.path.expanduser(a) for a in settings.args],
            env=self._env, cwd=os.path.expanduser(settings.cwd) if settings.cwd else None)
        if self._log_path is not None:
            self._log_path.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(self._log_path, "a", encoding="utf-8")  # noqa: SIM115
            return stdio_client(params, errlog=self._log), None
        return stdio_client(params, errlog=open(os.devnull, "w")), None  # noqa: SIM115

    async def _own(self, ready: asyncio.Future[None]) -> None:
        try:
            async with contextlib.AsyncExitStack() as stack:
                transport, http = self._transport()
                if http is not None:
                    stack.push_async_callback(http.aclose)
                client = Client(transport, client_info=CLIENT_INFO)
                self._client = await stack.enter_async_context(client)
                ready.set_result(None)
                await self._stop.wait()
        except BaseException as exc:  # noqa: BLE001 - reported to open(), or ends the task
            if not ready.done():
                ready.set_exception(exc if isinstance(exc, Exception) else
                                    ServerGone("the server stopped while starting"))
            elif not isinstance(exc, Exception):
                raise
        finally:
            self._client = None
            if self._log is not None:
                self._log.close()
                self._log = None

    async def list_tools(self) -> list[RemoteTool]:
        """Every tool the server offers (all pages)."""
        client = self._require()
        found: list[RemoteTool] = []
        cursor = None
        while True:
            page = await self._guard(client.list_tools(cursor=cursor))
            for tool in page.tools:
                schema = tool.model_dump(by_alias=True, mode="json").get("inputSchema") or {}
                hints = tool.annotations
                found.append(RemoteTool(tool.name, tool.description or tool.title or "",
                                        dict(schema) or {"type": "object", "properties": {}},
                                        getattr(hints, "read_only_hint", None)
                                        if hints else None))
            cursor = page.next_cursor
            if not cursor:
                return found

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float) -> RemoteResult:
        """Call ``tool``; raises ``CallTimedOut`` or ``ServerGone``."""
        client = self._require()
        try:
            async with asyncio.timeout(timeout + 5):  # the SDK's own timeout comes first
                result = await self._guard(client.call_tool(tool, arguments,
                                                            read_timeout_seconds=timeout))
        except TimeoutError:
            raise CallTimedOut from None
        return RemoteResult(flatten(result), bool(result.is_error))

    def _require(self) -> Any:
        if not self.alive:
            raise ServerGone(f"the MCP server '{self.name}' is not running")
        return self._client

    async def _guard(self, awaitable: Any) -> Any:
        """Await a request, turning protocol timeouts and broken connections into ours,
        and noticing a connection that dies while the request waits."""
        assert self._task is not None
        request = asyncio.ensure_future(awaitable)
        done, _ = await asyncio.wait({request, self._task}, return_when=asyncio.FIRST_COMPLETED)
        if request not in done:
            request.cancel()
            with contextlib.suppress(BaseException):
                await request
            raise ServerGone(f"the MCP server '{self.name}' stopped")
        try:
            return request.result()
        except MCPError as exc:
            if exc.code == _TIMEOUT_CODE:
                raise CallTimedOut from None
            if exc.code == _CLOSED_CODE or not self.alive:
                raise ServerGone(str(exc)) from None
            raise
        except (OSError, EOFError) as exc:
            raise ServerGone(str(exc) or type(exc).__name__) from None

    async def aclose(self) -> None:
        """Close the connection; a stdio child is ended (the SDK kills it if it lingers)."""
        self._stop.set()
        task, self._task = self._task, None
        if task is not None:
            try:
                await asyncio.wait_for(asyncio.shield(task), 10)
            except (TimeoutError, asyncio.CancelledError):
                task.cancel()
                with contextlib.suppress(BaseException):
                    await task
            except Exception:  # noqa: BLE001 - it already failed; nothing is left to close
                pass


def flatten(result: Any) -> str:
    """A ``CallToolResult`` as text: text blocks joined; media and links as placeholders;
    the structured content as JSON when there is no text."""
    parts: list[str] = []
    for block in result.content or ():
        kind = getattr(block, "type", "")
        if kind == "text":
            parts.append(block.text)
        elif kind in ("image", "audio"):
            size = len(getattr(block, "data", "") or "") * 3 // 4
            parts.append(f"[{kind}: {getattr(block, 'mime_type', '?')}, {size} bytes]")
        elif kind == "resource_link":
            parts.append(f"[resource: {block.uri}]")
        elif kind == "resource":
            inner = block.resource
            parts.append(getattr(inner, "text", None) or f"[resource: {inner.uri}]")
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False))
    return "\n".join(parts)
