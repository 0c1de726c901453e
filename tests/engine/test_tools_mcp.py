"""MCP servers as tools: a real server written with the SDK, over Streamable HTTP on
127.0.0.1 and over stdio in a child process (few stdio tests: a spawn costs seconds)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine import Settings
from engine.config import MCPServerSettings
from engine.errors import NotFound
from engine.types import Done
from tests.engine.tool_support import Approver, call, collect, configure, finished, open_engine
from tests.support.mcp_launch import stdio_config
from tests.support.openai_server import OpenAITestServer, calls_script

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply="Done.") as srv:
        yield srv


def _http(settings: Settings, url: str, **extra: object) -> None:
    settings.mcp_servers = {"remote": MCPServerSettings(url=url, **extra)}


async def test_http_header_from_environment_reaches_the_server(
        settings: Settings, server: OpenAITestServer, mcp_url: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MCP_TEST_TOKEN", "tok-123")
    configure(settings, server)
    _http(settings, mcp_url, headers={"Authorization": "Bearer ${MCP_TEST_TOKEN}"})
    engine = await open_engine(settings)
    try:
        result = await engine.tools.call("remote.header", '{"name": "authorization"}')
        assert (result.status, result.result) == ("ok", "Bearer tok-123")
        added = await engine.tools.call("remote.add", '{"a": 2, "b": 40}')
        assert added.result == "42"
        failed = await engine.tools.call("remote.fail", '{"message": "disk full"}')
        assert failed.status == "error" and "disk full" in failed.result
        runs = await engine.tools.runs()
        assert [(r.tool, r.status, r.session_id) for r in runs] == [
            ("header", "ok", None), ("add", "ok", None), ("fail", "error", None)]
    finally:
        await engine.close()


async def test_http_call_timeout(settings: Settings, server: OpenAITestServer,
                                 mcp_url: str) -> None:
    configure(settings, server, allow=["remote.*"])
    _http(settings, mcp_url, call_timeout=1.0)
    server.tool_calls = calls_script([[call("remote__slow", seconds=5)]])
    engine = await open_engine(settings)
    try:
        events = await collect(engine.chat.ask("Take your time"))
        (result,) = finished(events)
        assert result.status == "timeout" and "1 s" in result.result
        assert next(e for e in events if isinstance(e, Done)).status == "complete"
    finally:
        await engine.close()


async def test_deny_beats_allow_on_mcp_names_and_taint_from_another_server(
        settings: Settings, server: OpenAITestServer, mcp_url: str) -> None:
    configure(settings, server, allow=["remote.*"], deny=["remote.echo"])
    _http(settings, mcp_url)
    engine = await open_engine(settings)
    try:
        catalog = {s.name: s for s in await engine.tools.catalog()}
        policies = {t.name: t.policy for t in catalog["remote"].tools}
        assert policies["echo"] == "deny" and policies["add"] == "allow"
        # The model asks for the denied tool anyway: it is not offered, so it is unknown.
        server.tool_calls = calls_script([[call("remote__echo", text="x")]])
        events = await collect(engine.chat.ask("Echo", new=True))
        offered = [t["function"]["name"] for t in server.chat_requests[0].json["tools"]]
        assert "remote__echo" not in offered and "remote__add" in offered
        assert [r.status for r in finished(events)] == ["error"]
        # Another server's result in the prompt: under auto, a tool outside allow asks.
        engine.settings.tools.allow = []
        engine.settings.tools.deny = []
        approver = Approver("deny")
        server.tool_calls = calls_script([[call("remote__injection")],
                                          [call("parley__search", query="key file")]])
        events = await collect(engine.chat.ask("Go", new=True, approval="auto",
                                               approver=approver))
        assert [(r.tool, r.decision) for r in finished(events)] == [
            ("injection", "auto"), ("search", "denied")]
        assert "results from remote" in approver.asked[0].reason
    finally:
        await engine.close()


def _running(marker: str) -> list[int]:
    """Live processes whose command line contains ``marker``."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if marker in cmdline and _pid_alive(int(entry.name)):
                found.append(int(entry.name))
    return found


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as handle:  # a zombie is gone too
            return handle.read().split(") ")[1][0] != "Z"
    except OSError:
        return False


async def test_stdio_server_environment_log_and_no_child_left(
        settings: Settings, server: OpenAITestServer, monkeypatch: pytest.MonkeyPatch,
        parley_home: Path) -> None:
    monkeypatch.setenv("PARLEY_KEY", "a-secret-passphrase")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u:p@h/db")
    monkeypatch.setenv("MY_NOTES_DIR", "/notes")
    configure(settings, server, allow=["files.*"])
    settings.mcp_servers = {"files": MCPServerSettings(**stdio_config(
        env={"NOTES": "${MY_NOTES_DIR}", "LEVEL": "${UNSET_VAR:-quiet}"}))}
    engine = await open_engine(settings)
    try:
        async def env(name: str) -> str:
            return (await engine.tools.call("files.env", json.dumps({"name": name}))).result

        for secret in ("PARLEY_KEY", "PARLEY_HOME", "OPENAI_API_KEY", "DATABASE_URL"):
            assert await env(secret) == "<unset>", secret
        assert await env("NOTES") == "/notes" and await env("LEVEL") == "quiet"
        pid = int((await engine.tools.call("files.pid", "{}")).result)
        assert _pid_alive(pid)
        # a model turn through the stdio server
        server.tool_calls = calls_script([[call("files__add", a=1, b=2)]])
        events = await collect(engine.chat.ask("Add"))
        assert [(r.status, r.result) for r in finished(events)] == [("ok", "3")]
    finally:
        await engine.close()
    assert not _pid_alive(pid)
    log = (parley_home / "logs" / "mcp-files.log").read_text()
    assert "parley-test MCP server starting" in log


async def test_stdio_startup_timeout_and_restart_once(
        settings: Settings, server: OpenAITestServer) -> None:
    configure(settings, server, startup_timeout=3.0)
    settings.mcp_servers = {
        "mute": MCPServerSettings(command=sys.executable,
                                  args=["-c", "import time; time.sleep(60.125)"], trusted=True),
        "files": MCPServerSettings(**stdio_config())}
    engine = await open_engine(settings)
    try:
        settings.tools.startup_timeout = 60.0
        engine.tools.servers()["mute"].startup_timeout = 3.0
        catalog = {s.name: s for s in await engine.tools.catalog()}
        assert catalog["mute"].state == "unavailable"
        assert "did not start within 3 s" in (catalog["mute"].error or "")
        assert not _running("time.sleep(60.125)")  # the silent child was ended
        assert catalog["files"].state == "ready"
        first = await engine.tools.call("files.die", "{}")
        assert first.status == "error" and "stopped" in first.result
        again = await engine.tools.call("files.add", '{"a": 1, "b": 1}')  # restarted once
        assert again.result == "2"
        await engine.tools.call("files.die", "{}")
        with pytest.raises(NotFound, match="stopped again after a restart"):
            await engine.tools.call("files.add", '{"a": 1, "b": 1}')
        catalog = {s.name: s for s in await engine.tools.catalog()}
        assert catalog["files"].state == "unavailable"
        assert "parley-test MCP server starting" in (catalog["files"].error or "")
    finally:
        await engine.close()


async def test_cancel_during_a_call_stores_it_cancelled_and_leaves_no_orphan(
        settings: Settings, server: OpenAITestServer, mcp_url: str) -> None:
    configure(settings, server, allow=["remote.*"])
    _http(settings, mcp_url)
    server.tool_preamble = "Checking. "
    server.tool_calls = calls_script([[call("remote__slow", "call_slow", seconds=30)]])
    engine = await open_engine(settings)
    try:
        started = asyncio.Event()

        async def consume() -> None:
            async for event in engine.chat.ask("Slow", new=True):
                if type(event).__name__ == "ToolCallStarted":
                    started.set()

        task = asyncio.create_task(consume())
        await asyncio.wait_for(started.wait(), 60)
        await asyncio.sleep(0.2)  # the call is on its way to the server
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        (run,) = await engine.tools.runs()
        assert (run.status, run.call_id) == ("cancelled", "call_slow")
        detail = await engine.sessions.get(run.session_id)  # type: ignore[arg-type]
        assert detail.messages[-1].status == "interrupted"
        assert detail.messages[-1].content == "Checking. "
        server.tool_calls = None
        await collect(engine.chat.ask("Go on", session_id=run.session_id))
        sent = server.chat_requests[-1].json["messages"]
        calls = [c["id"] for m in sent for c in m.get("tool_calls") or ()]
        answers = [m["tool_call_id"] for m in sent if m["role"] == "tool"]
        assert calls == answers == ["call_slow"]
        assert "cancelled" in next(m for m in sent if m["role"] == "tool")["content"]
    finally:
        await engine.close()
