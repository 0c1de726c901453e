"""``engine.tools``: the servers, what a turn may offer, approvals, calls by hand, runs.

Servers are built from the settings when first needed; MCP servers start when a turn (or
``parley tools list``/``call``) first uses them, and are closed with the engine, so no
child process outlives it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select

from engine.config import data_dir
from engine.db import models as m
from engine.db.coltypes import utcnow
from engine.errors import ConfigError, NotFound, UsageError
from engine.tools.builtin import ParleyServer, SourceBook
from engine.tools.policy import Policy, matches
from engine.tools.results import clip, parse_arguments, wire_name
from engine.tools.servers import MCPServer, Tool, ToolOutput, ToolServerDown
from engine.tools.store import RunRecord, add_runs, list_runs, replay
from engine.tools.trust import Trust
from engine.types import ToolCallFinished, ToolInfo, ToolRunInfo, ToolServerInfo

if TYPE_CHECKING:
    from engine.facade import Engine
    from engine.providers.base import ChatMessage
    from engine.tools.loop import Approver, ToolTurn
    from engine.types import Message


class Toolbox:
    """Tool servers and tool runs of one engine (see the module docstring)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.settings = engine.settings.tools
        self._servers: dict[str, Any] | None = None
        self._session_ok: dict[int | None, set[str]] = {}
        self.trust = Trust(engine)
        """Trusted command lines of local servers; front ends set ``trust.asker``."""
        self.last_offered: int | None = None
        """How many tools the last turn offered (None before the first)."""

    # -- servers ------------------------------------------------------------------------------
    def servers(self) -> dict[str, Any]:
        """Every configured server by name (nothing is started here)."""
        if self._servers is None:
            found: dict[str, Any] = {}
            if self.settings.builtin_search:
                found["parley"] = ParleyServer(self.engine)
            log_dir = data_dir() / "logs"
            for name, config in self.engine.settings.mcp_servers.items():
                if config.enabled:
                    found[name] = MCPServer(name, config, log_dir=log_dir, trust=self.trust,
                                            startup_timeout=self.settings.startup_timeout)
            self._servers = found
        return self._servers

    async def aclose(self) -> None:
        """Stop every MCP server this engine started."""
        servers, self._servers = self._servers or {}, None
        await asyncio.gather(*(s.aclose() for s in servers.values()), return_exceptions=True)

    async def available(self, policy: Policy, selection: Sequence[str] | None = None,
                        ) -> tuple[dict[str, Tool], list[str]]:
        """(tools to offer by wire name, one line per server that failed to start).
        Denied tools, and tools a non-empty ``selection`` leaves out, are left out; servers
        no selected name can match are not started. Servers start concurrently."""
        servers = [s for name, s in self.servers().items()
                   if not selection or matches(name, [g.partition(".")[0] for g in selection])]
        listed = await asyncio.gather(*(s.tools() for s in servers), return_exceptions=True)
        offered: dict[str, Tool] = {}
        problems: list[str] = []
        for tools in listed:
            if isinstance(tools, BaseException):
                if not isinstance(tools, ToolServerDown | ConfigError | OSError):
                    raise tools
                problems.append(str(getattr(tools, "message", None) or tools))
                continue
            for tool in tools:
                if policy.offered(tool.canonical) and (not selection
                                                       or matches(tool.canonical, selection)):
                    offered[wire_name(tool.server, tool.name)] = tool
        return offered, problems

    async def catalog(self, approval: str | None = None) -> list[ToolServerInfo]:
        """Every configured server with its tools and their effective policy (starts them)."""
        policy = Policy.of(self.settings, approval)
        always = await self.always()
        out = [ToolServerInfo(name, "stdio", "disabled")
               for name, c in self.engine.settings.mcp_servers.items() if not c.enabled]
        for name, server in self.servers().items():
            try:
                tools = await server.tools()
            except (ToolServerDown, ConfigError, OSError) as exc:
                out.append(ToolServerInfo(name, server.kind, _down(server),
                                          error=str(getattr(exc, "message", None) or exc),
                                          log_path=_path(server.log_path)))
                continue
            infos = tuple(ToolInfo(t.server, t.name, t.description,
                                   _label(policy, t.canonical, always), t.parameters,
                                   t.read_only) for t in tools)
            out.append(ToolServerInfo(name, server.kind, server.state, infos,
                                      start_ms=server.start_ms, log_path=_path(server.log_path)))
        return sorted(out, key=lambda i: (i.name != "parley", i.name))

    async def run(self, tool: Tool, arguments: dict[str, Any], *, book: SourceBook | None,
                  collections: Sequence[str] | None = None) -> ToolOutput:
        """Call one tool within its timeout; the built-in search numbers its hits in
        ``book``."""
        server = self.servers()[tool.server]
        config = self.engine.settings.mcp_servers.get(tool.server)
        timeout = (config.call_timeout if config and config.call_timeout
                   else self.settings.call_timeout)
        context = _Context(collections)
        try:
            async with asyncio.timeout(timeout + 10):  # MCP calls time out on their own first
                output = await server.call(tool.name, arguments, timeout, context)
        except TimeoutError:
            return ToolOutput(f"the call did not finish within {timeout:g} s", "timeout")
        except ToolServerDown as exc:
            return ToolOutput(str(exc), "error")
        if output.hits or (tool.canonical == "parley.search" and output.status == "ok"):
            book = book if book is not None else SourceBook()
            query = str(arguments.get("query", ""))
            return ToolOutput(book.render(query, output.hits), "ok", output.hits)
        return output

    async def prepare(self, *, session_id: int, collections: Sequence[str],
                      approval: str | None, approver: Approver | None,
                      history: Sequence[Message], selection: Sequence[str] | None = None,
                      ) -> tuple[ToolTurn, dict[int, list[ChatMessage]]]:
        """The tools of a turn (starting servers on first use; only those of the session's
        ``selection`` when it names some) and, by earlier answer id, the tool rounds to
        replay before its text."""
        from engine.tools.loop import ToolTurn

        policy = Policy.of(self.settings, approval)
        tools, problems = await self.available(policy, selection)
        self.last_offered = len(tools)
        tt = ToolTurn(self, policy, tools, approver, session_id, tuple(collections),
                      SourceBook(), problems=problems)
        answers = [m.id for m in history if m.role == "assistant"]
        runs = await self.runs_of(answers) if answers else {}
        wire = {t.canonical: w for w, t in tools.items()}
        limit = self.settings.max_result_chars
        tt.history_servers = {r.server for group in runs.values() for r in group
                              if r.status == "ok"}
        return tt, {mid: replay(group, wire, limit) for mid, group in runs.items()}

    # -- approvals ---------------------------------------------------------------------------
    async def always(self) -> set[str]:
        """Tools the user answered "always" for."""
        async with self.engine._require_db().read() as s:
            return set(await s.scalars(select(m.ToolApproval.tool).where(
                m.ToolApproval.user_id == self.engine.user_id)))

    async def remember_always(self, canonical: str) -> None:
        async with self.engine._require_db().write() as s:
            found = await s.scalar(select(m.ToolApproval.id).where(
                m.ToolApproval.user_id == self.engine.user_id, m.ToolApproval.tool == canonical))
            if found is None:
                s.add(m.ToolApproval(user_id=self.engine.user_id, tool=canonical))
                s.add(m.AuditLog(user_id=self.engine.user_id, actor=self.engine.settings.user,
                                 action="tool.approve_always", target=canonical))

    async def forget_always(self, canonical: str | None = None) -> int:
        """Drop "always" answers (all of them when ``canonical`` is None)."""
        async with self.engine._require_db().write() as s:
            stmt = delete(m.ToolApproval).where(m.ToolApproval.user_id == self.engine.user_id)
            if canonical is not None:
                stmt = stmt.where(m.ToolApproval.tool == canonical)
            return (await s.execute(stmt)).rowcount or 0

    def session_approved(self, session_id: int | None) -> set[str]:
        """Tools answered "this session" for, in this process."""
        return self._session_ok.setdefault(session_id, set())

    # -- by hand and runs ---------------------------------------------------------------------
    async def call(self, canonical: str, arguments: str) -> ToolCallFinished:
        """Run one tool by hand (``parley tools call``): no model, no approval (the user
        asked), but deny still wins. Stored as a run with no session."""
        server_name, _, tool_name = canonical.partition(".")
        if not tool_name:
            raise UsageError(f"'{canonical}' is not SERVER.TOOL", "e.g. parley.search")
        if server_name not in self.servers():
            raise NotFound(f"no tool server named '{server_name}'",
                           "list them: parley tools list")
        if not Policy.of(self.settings).offered(canonical):
            raise UsageError(f"{canonical} is denied by tools.deny", "remove it from tools.deny")
        args, problem = parse_arguments(arguments)
        if args is None:
            raise UsageError(f"--args: {problem}", "give a JSON object, e.g. '{\"query\": \"x\"}'")
        try:
            tools = {t.name: t for t in await self.servers()[server_name].tools()}
        except ToolServerDown as exc:
            if _down(self.servers()[server_name]) == "untrusted":  # the user must say yes
                raise UsageError(str(exc)) from None
            raise NotFound(str(exc), "see: parley tools list") from None
        if tool_name not in tools:
            raise NotFound(f"server '{server_name}' has no tool '{tool_name}'",
                           f"its tools: {', '.join(sorted(tools)) or 'none'}")
        record = RunRecord(f"manual_{int(time.time() * 1000)}", server_name, tool_name,
                           arguments, 1, 0, decision="manual", started_at=utcnow())
        started = time.monotonic()
        output = await self.run(tools[tool_name], args, book=None)
        record.duration_ms = (time.monotonic() - started) * 1000
        record.status = output.status
        record.result_chars = len(output.text)
        if output.status == "ok":
            record.result = output.text
        else:
            record.error = output.text
        record.truncated = clip(output.text, self.settings.max_result_chars)[1]
        async with self.engine._require_db().write() as s:
            add_runs(s, self.engine.user_id, None, None, [record], self.settings.store_max_chars)
        return ToolCallFinished(record.call_id, server_name, tool_name, arguments,
                                record.status, "manual", output.text, record.result_chars,
                                record.truncated, record.duration_ms, 1)

    async def runs(self, session_id: int | None = None,
                   limit: int | None = None) -> list[ToolRunInfo]:
        """Stored runs, oldest first (of one session when given)."""
        async with self.engine._require_db().read() as s:
            if session_id is not None:
                await self.engine.sessions._owned(s, session_id)
            return await list_runs(s, self.engine.user_id, session_id=session_id, limit=limit)

    async def runs_of(self, message_ids: Sequence[int]) -> dict[int, list[ToolRunInfo]]:
        """Runs by answer message id."""
        async with self.engine._require_db().read() as s:
            found = await list_runs(s, self.engine.user_id, message_ids=list(message_ids))
        out: dict[int, list[ToolRunInfo]] = {}
        for run in found:
            if run.message_id is not None:
                out.setdefault(run.message_id, []).append(run)
        return out


class _Context:
    """What a server may know about the turn that calls it."""

    def __init__(self, collections: Sequence[str] | None) -> None:
        self.collections = list(collections) if collections else None


def _label(policy: Policy, canonical: str, always: set[str]) -> str:
    verdict = policy.static(canonical)
    if verdict in ("ask", "never") and canonical in always:
        return "allow"
    return verdict


def _path(path: Any) -> str | None:
    return str(path) if path is not None else None


def _down(server: Any) -> str:
    return "untrusted" if getattr(server, "state", "") == "untrusted" else "unavailable"
