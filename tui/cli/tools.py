"""``parley tools``: the tool servers, calling a tool by hand, the stored tool runs; and
what ``parley ask`` shows of tool calls (lines on stderr, JSON events, the approval prompt).

The approval prompt goes to stderr, so stdout stays the answer. With no terminal on stdin
and stderr nobody can answer: calls that need a question are refused and the model is told.
"""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

import click

from tui.cli.common import fail, info, json_option, open_engine, print_json, run

if TYPE_CHECKING:
    from engine.types import (
        ApprovalRequest,
        ToolCallFinished,
        ToolCallStarted,
        ToolRunInfo,
        TrustRequest,
    )

ANSWER_KEYS = {"y": "once", "yes": "once", "s": "session", "a": "always", "n": "deny",
               "no": "deny", "": "deny"}


def size(chars: int) -> str:
    """A result size for people: 980 B, 1.2 kB, 3.4 MB (characters, near enough bytes)."""
    if chars < 1000:
        return f"{chars} B"
    if chars < 1_000_000:
        return f"{chars / 1000:.1f} kB"
    return f"{chars / 1_000_000:.1f} MB"


def finished_line(event: ToolCallFinished) -> str:
    """One stderr line per finished call: ``tool files.read {...} → ok, 1.2 kB in 140 ms``."""
    args = event.arguments if len(event.arguments) <= 80 else event.arguments[:77] + "..."
    took = f" in {event.duration_ms:.0f} ms" if event.duration_ms is not None else ""
    if event.status == "ok":
        what = f"ok, {size(event.chars)}{took}" + (" (cut for the model)" if event.truncated
                                                   else "")
    else:
        reason = event.result.splitlines()[0][:120] if event.result else ""
        what = f"{event.status}{took}: {reason}"
    return f"tool {event.server}.{event.tool} {args} → {what}"


def started_json(event: ToolCallStarted) -> dict[str, Any]:
    return {"type": "tool_call", "call_id": event.call_id, "server": event.server,
            "tool": event.tool, "arguments": event.arguments, "round": event.round,
            "decision": event.decision}


def finished_json(event: ToolCallFinished) -> dict[str, Any]:
    return {"call_id": event.call_id, "server": event.server, "tool": event.tool,
            "arguments": event.arguments, "status": event.status, "decision": event.decision,
            "result": event.result, "chars": event.chars, "truncated": event.truncated,
            "duration_ms": event.duration_ms, "round": event.round}


def terminal_approver() -> Any:
    """The stderr prompt when a person can answer, else None (calls that ask are refused)."""
    if sys.stdin is None or not sys.stdin.isatty() or not sys.stderr.isatty():
        return None

    async def approve(request: ApprovalRequest) -> str:
        info(f"\nparley: the model wants to run {request.server}.{request.tool}"
             + (f" ({request.description.splitlines()[0][:100]})" if request.description
                else "") + " with:")
        info(request.arguments)
        info(request.reason)
        while True:
            reply = await asyncio.to_thread(
                click.prompt, "Run it? [y]es once, [s]ession, [a]lways, [N]o", default="",
                show_default=False, err=True)
            answer = ANSWER_KEYS.get(reply.strip().lower())
            if answer is not None:
                return answer
            info("answer y, s, a or n")

    return approve


def trust_option(func: Any) -> Any:
    """``--trust-servers``: start local MCP servers whose command line is new without asking."""
    return click.option(
        "--trust-servers", is_flag=True,
        help="Start local MCP servers whose command line is new or changed without asking "
             "(for scripts; not remembered).")(func)


def setup_trust(engine: Any, trust_servers: bool) -> None:
    """Who confirms a new local server command: the terminal, the flag, or nobody."""
    trust = engine.tools.trust
    trust.trust_all = trust_servers
    trust.asker = terminal_trust()


def terminal_trust() -> Any:
    """The stderr question before a new local server command runs, when a person can
    answer; else None (the server is not started)."""
    if sys.stdin is None or not sys.stdin.isatty() or not sys.stderr.isatty():
        return None

    async def confirm(request: TrustRequest) -> bool:
        what = ("its command line changed since you trusted it" if request.changed
                else "it has not run before")
        info(f"\nparley: the MCP server '{request.server}' is about to start ({what}):")
        info(f"  command: {request.command_line}")
        if request.env_names:
            info(f"  env:     {', '.join(request.env_names)}")
        if request.cwd:
            info(f"  cwd:     {request.cwd}")
        info("  It runs with your rights. Parley remembers your yes for this command line.")
        reply = await asyncio.to_thread(click.prompt, "Start it? [y/N]", default="",
                                        show_default=False, err=True)
        return reply.strip().lower() in ("y", "yes")

    return confirm


@click.group("tools")
def tools() -> None:
    """Tools models may call: MCP servers and Parley's own search."""


@tools.command("list")
@click.option("--approve", type=click.Choice(["ask", "auto", "never"]),
              help="Show the policy under this approval mode (default: tools.approval).")
@trust_option
@json_option
@run
async def list_tools(approve: str | None, trust_servers: bool, as_json: bool) -> None:
    """Servers (started to list their tools), tools and their effective policy:
    allow (runs), ask, auto, never (refused) or deny (never offered). A local server whose
    command line is new is shown and confirmed first."""
    async with open_engine() as engine:
        setup_trust(engine, trust_servers)
        servers = await engine.tools.catalog(approve)
        enabled = engine.settings.tools.enabled
    if as_json:
        print_json({"enabled": enabled, "servers": [
            {"name": s.name, "kind": s.kind, "state": s.state, "error": s.error,
             "start_ms": s.start_ms, "log": s.log_path,
             "tools": [{"name": t.name, "canonical": t.canonical, "policy": t.policy,
                        "description": t.description, "read_only_hint": t.read_only_hint,
                        "parameters": t.parameters} for t in s.tools]} for s in servers]})
        return
    if not enabled:
        info("parley: tools are off (tools.enabled: false); 'parley ask --tools' turns them "
             "on for one question")
    for server in servers:
        took = f" in {server.start_ms:.0f} ms" if server.start_ms else ""
        click.echo(f"{server.name} ({server.kind}) {server.state}{took}")
        if server.error:
            click.echo(f"  {server.error}")
        for tool in server.tools:
            first = tool.description.splitlines()[0][:70] if tool.description else ""
            click.echo(f"  {tool.canonical:<28} {tool.policy:<6} {first}")


@tools.command("call")
@click.argument("name", metavar="SERVER.TOOL")
@click.option("--args", "arguments", default="{}", metavar="JSON",
              help="The arguments as a JSON object (default: {}).")
@trust_option
@json_option
@run
async def call_tool(name: str, arguments: str, trust_servers: bool, as_json: bool) -> None:
    """Run one tool by hand and print its result (stored as a tool run)."""
    async with open_engine() as engine:
        setup_trust(engine, trust_servers)
        result = await engine.tools.call(name, arguments)
    if as_json:
        print_json(finished_json(result))
    elif result.status == "ok":
        click.echo(result.result)
    if result.status != "ok":
        fail(f"{name} {result.status}: {result.result}")


@tools.command("untrust")
@click.argument("server", required=False)
@run
async def untrust(server: str | None) -> None:
    """Forget that you trusted SERVER's command line (all servers when none is named): its
    next start asks again."""
    async with open_engine() as engine:
        count = await engine.tools.trust.forget(server)
    what = f"server '{server}'" if server else "every server"
    info(f"parley: forgot {count} trusted command line{'s' if count != 1 else ''} of {what}")


@tools.command("runs")
@click.option("--session", "session_id", type=int, metavar="ID", help="Runs of this session.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True,
              help="The newest N runs.")
@json_option
@run
async def list_runs(session_id: int | None, limit: int, as_json: bool) -> None:
    """Stored tool runs, oldest first, with their arguments and results (decrypted)."""
    async with open_engine() as engine:
        runs = await engine.tools.runs(session_id, limit=limit)
    if as_json:
        print_json([run_json(r) for r in runs])
        return
    if not runs:
        info("parley: no tool runs yet")
    for r in runs:
        click.echo(run_line(r))


def run_json(r: ToolRunInfo) -> dict[str, Any]:
    return {"id": r.id, "session_id": r.session_id, "message_id": r.message_id,
            "round": r.round, "call_id": r.call_id, "server": r.server, "tool": r.tool,
            "arguments": r.arguments, "status": r.status, "decision": r.decision,
            "result": r.result, "error": r.error, "result_chars": r.result_chars,
            "truncated": r.truncated, "duration_ms": r.duration_ms,
            "created_at": r.created_at.isoformat()}


def run_line(r: ToolRunInfo) -> str:
    where = f"session {r.session_id}" if r.session_id is not None else "by hand"
    took = f" {r.duration_ms:.0f} ms" if r.duration_ms is not None else ""
    args = r.arguments if len(r.arguments) <= 60 else r.arguments[:57] + "..."
    return (f"#{r.id} {r.created_at:%Y-%m-%d %H:%M} {where}: {r.server}.{r.tool} {args} "
            f"→ {r.status} ({r.decision}){took}")


COMMANDS = [tools]
