"""What tools cost: the tool loop's own overhead per round, MCP server start, first paint.

- **overhead per round**: a turn whose model asks for one tool call per round, against
  the same turn with no call, on an SQLite database in a temporary PARLEY_HOME. The model
  is an in-process fake that answers at once and the tool returns at once, so what is
  measured is Parley's part: assembling calls, parsing arguments, the policy and approval
  check, the loop guard, the follow-up messages and storing the encrypted runs and the
  usage row of each round. Printed: (T(k rounds) - T(0)) / k, median over ``--turns``.
- **calls of one round**: a round of 4 calls of a tool that takes 200 ms, run together
  (``tools.parallel_calls: true``) and one by one.
- **MCP server start**: a stdio server (the suite's SDK server: spawn, the child imports
  the SDK, handshake, list tools) and a Streamable HTTP one already running on 127.0.0.1
  (connect, handshake, list tools), each ``--starts`` times, with the client SDK imported
  beforehand (its import is counted once, separately).
- **first paint** with tools and an MCP server configured, against none (servers start on
  first use, so it must not grow): the ``parley`` command in tmux, as
  ``bench/tui_startup.py`` measures it, ``--runs`` launches each.

Run: ``.venv/bin/python bench/tools_bench.py [--turns 20] [--rounds 5] [--starts 3]
[--runs 5]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


class FakeModel:
    """A provider that asks for ``rounds`` calls of ``bench__echo``, then answers."""

    kind = "openai"
    name = "bench"
    is_local = True

    def __init__(self, rounds: int) -> None:
        self.rounds = rounds

    async def stream(self, messages: Sequence[Any], *, model: str, temperature: Any = None,
                     max_tokens: Any = None, sources: Any = (),
                     tools: Sequence[Any] = ()) -> AsyncIterator[Any]:
        from engine.providers.base import StreamEnd, StreamUsage, TextDelta, ToolCall, ToolCalls

        last_user = max(i for i, m in enumerate(messages) if m.role == "user")
        done = sum(1 for m in messages[last_user:] if m.role == "tool")
        if tools and done < self.rounds:
            yield ToolCalls((ToolCall(f"call_{done}", "bench__echo",
                                      f'{{"text": "round {done}", "n": {done}}}'),))
        else:
            yield TextDelta("The answer.")
        yield StreamUsage(100, 10)
        yield StreamEnd("stop")

    async def list_models(self) -> list[str]:
        return ["fake"]

    async def aclose(self) -> None:
        return None


class NullServer:
    """A tool server whose one tool answers at once."""

    name = "bench"
    kind = "builtin"
    state = "ready"
    error = None
    start_ms = 0.0
    log_path = None

    async def tools(self) -> list[Any]:
        from engine.tools.servers import Tool

        return [Tool("bench", "echo", "Echo the text.", {"type": "object", "properties": {
            "text": {"type": "string"}, "n": {"type": "integer"}}})]

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float,
                   context: Any = None) -> Any:
        from engine.tools.servers import ToolOutput

        return ToolOutput(str(arguments.get("text")))

    async def aclose(self) -> None:
        return None


async def overhead(turns: int, rounds: int) -> tuple[float, float]:
    """(median ms of a turn without calls, median ms per tool round on top)."""
    from engine import Engine, load_settings

    settings = load_settings(overrides={
        "providers": {"bench": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "chat": {"provider": "bench", "model": "fake", "rag": False},
        "tools": {"enabled": True, "allow": ["bench.*"], "builtin_search": False,
                  "max_rounds": rounds + 1, "max_repeats": rounds + 1}})
    async with Engine(settings) as engine:
        engine.tools.servers()["bench"] = NullServer()
        plain_model, tool_model = FakeModel(0), FakeModel(rounds)

        async def turn(model: FakeModel) -> float:
            engine.chat._providers["bench"] = model  # type: ignore[assignment]
            started = time.perf_counter()
            async for _ in engine.chat.ask("Question?", new=True):
                pass
            return time.perf_counter() - started

        for _ in range(3):  # warm up: imports, statement caches
            await turn(plain_model)
            await turn(tool_model)
        plain, tooled = [], []
        for _ in range(turns):
            plain.append(await turn(plain_model))
            tooled.append(await turn(tool_model))
        base = statistics.median(plain)
        return base * 1000, (statistics.median(tooled) - base) / rounds * 1000


class BatchModel(FakeModel):
    """Asks for ``calls`` calls of ``bench__echo`` in one round, then answers."""

    def __init__(self, calls: int) -> None:
        super().__init__(1)
        self.calls = calls

    async def stream(self, messages: Sequence[Any], *, model: str, temperature: Any = None,
                     max_tokens: Any = None, sources: Any = (),
                     tools: Sequence[Any] = ()) -> AsyncIterator[Any]:
        from engine.providers.base import StreamEnd, StreamUsage, TextDelta, ToolCall, ToolCalls

        if tools and messages[-1].role == "user":
            yield ToolCalls(tuple(ToolCall(f"call_{i}", "bench__echo", f'{{"text": "{i}"}}')
                                  for i in range(self.calls)))
        else:
            yield TextDelta("The answer.")
        yield StreamUsage(100, 10)
        yield StreamEnd("stop")


class SlowServer(NullServer):
    """Each call takes ``seconds`` (a tool that waits on I/O)."""

    seconds = 0.2

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float,
                   context: Any = None) -> Any:
        await asyncio.sleep(self.seconds)
        return await super().call(tool, arguments, timeout, context)


async def batch(calls: int, turns: int) -> tuple[float, float]:
    """(median ms of a turn whose one round has ``calls`` calls of 200 ms each, run
    together; the same run one by one)."""
    from engine import Engine, load_settings

    settings = load_settings(overrides={
        "providers": {"bench": {"kind": "openai", "base_url": "http://127.0.0.1:9/v1"}},
        "chat": {"provider": "bench", "model": "fake", "rag": False},
        "tools": {"enabled": True, "allow": ["bench.*"], "builtin_search": False,
                  "max_repeats": calls}})
    out = []
    async with Engine(settings) as engine:
        engine.tools.servers()["bench"] = SlowServer()
        engine.chat._providers["bench"] = BatchModel(calls)  # type: ignore[assignment]
        for parallel in (True, False):
            settings.tools.parallel_calls = parallel
            times = []
            for _ in range(turns):
                started = time.perf_counter()
                async for _ in engine.chat.ask("Question?", new=True):
                    pass
                times.append(time.perf_counter() - started)
            out.append(statistics.median(times) * 1000)
    return out[0], out[1]


async def starts(count: int) -> tuple[float, list[float], list[float]]:
    """(SDK import ms, stdio start ms per start, HTTP connect ms per start)."""
    from engine.config import MCPServerSettings
    from engine.tools.servers import MCPServer
    from tests.support.mcp_launch import http_server, stdio_config

    began = time.perf_counter()
    import engine.tools.mcp_client  # noqa: F401 - the SDK import, timed once

    sdk_ms = (time.perf_counter() - began) * 1000
    log_dir = Path(tempfile.mkdtemp(prefix="parley-bench-mcp-"))
    stdio: list[float] = []
    for _ in range(count):
        server = MCPServer("files", MCPServerSettings(**stdio_config()), startup_timeout=120,
                           log_dir=log_dir)
        await server.tools()
        stdio.append(server.start_ms or 0.0)
        await server.aclose()
    http: list[float] = []
    with http_server() as url:
        for _ in range(count):
            server = MCPServer("remote", MCPServerSettings(url=url), startup_timeout=120,
                               log_dir=log_dir)
            await server.tools()
            http.append(server.start_ms or 0.0)
            await server.aclose()
    shutil.rmtree(log_dir, ignore_errors=True)
    return sdk_ms, stdio, http


def first_paint(runs: int) -> tuple[list[float], list[float]]:
    """Seconds to first paint without tools and with tools and an MCP server configured."""
    import yaml

    from bench.tui_startup import PARLEY, launch
    from tests.support.mcp_launch import stdio_config

    results = []
    for config in ({}, {"tools": {"enabled": True},
                        "mcp_servers": {"files": stdio_config()}}):
        home = Path(tempfile.mkdtemp(prefix="parley-bench-paint-"))
        (home / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
        env.update(PARLEY_HOME=str(home), TERM="xterm-256color")
        paint = [launch(env, shlex.quote(str(PARLEY)),
                        {"paint": lambda s: "Ask a question" in s and "parley" in s})["paint"]
                 for _ in range(runs)]
        results.append(paint)
        shutil.rmtree(home, ignore_errors=True)
    return results[0], results[1]


def _ms(values: Sequence[float], scale: float = 1.0) -> str:
    ms = sorted(v * scale for v in values)
    return f"median {statistics.median(ms):7.1f} ms  (min {ms[0]:.1f}, max {ms[-1]:.1f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-paint", action="store_true", help="no tmux launches")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="parley-bench-tools-"))
    os.environ["PARLEY_HOME"] = str(home)
    base, per_round = asyncio.run(overhead(args.turns, args.rounds))
    print(f"Tool loop, {args.turns} turns of {args.rounds} tool rounds vs none (SQLite)")
    print(f"  turn without tool calls   {base:7.1f} ms (median)")
    print(f"  overhead per tool round   {per_round:7.1f} ms (median; model and tool excluded)")
    together, serial = asyncio.run(batch(4, max(args.turns // 4, 3)))
    print("One round of 4 calls of 200 ms each (tools.parallel_calls)")
    print(f"  run together (true)       {together:7.1f} ms (median turn)")
    print(f"  one by one (false)        {serial:7.1f} ms (median turn)")
    sdk, stdio, http = asyncio.run(starts(args.starts))
    print(f"MCP servers, {args.starts} starts each")
    print(f"  import of the SDK (once)  {sdk:7.1f} ms")
    print(f"  stdio server start        {_ms(stdio)}")
    print(f"  HTTP server connect       {_ms(http)}")
    if not args.skip_paint and shutil.which("tmux"):
        without, with_tools = first_paint(args.runs)
        print(f"TUI first paint, {args.runs} launches each")
        print(f"  no tools configured       {_ms(without, 1000)}")
        print(f"  tools + MCP server        {_ms(with_tools, 1000)}")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
