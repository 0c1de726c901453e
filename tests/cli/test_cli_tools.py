"""``parley ask --tools`` and ``parley tools`` as scripts run them: the real command in a
subprocess with no terminal and for the errors a user meets, in-process for the other steps;
the OpenAI-compatible test server and a real MCP server (stdio)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import Engine, Settings
from tests.cli.test_cli_foundation import parley, steps
from tests.conftest import migrate
from tests.engine.chat_support import write_corpus
from tests.support.mcp_launch import stdio_config
from tests.support.openai_server import OpenAITestServer, calls_script

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


def _cite(request: dict[str, Any]) -> str:
    for message in request["messages"]:
        if message.get("role") == "tool" and "gigawatts" in message["content"]:
            marker = message["content"].split("gigawatts")[0].rsplit("\n[", 1)[1].split("]")[0]
            return f"It needs 1.21 gigawatts [{marker}]."
    return "No idea."


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply=_cite) as srv:
        yield srv


@pytest.fixture
async def home(settings: Settings, parley_home: Path, server: OpenAITestServer,
               tmp_path: Path) -> Path:
    config = {"chat": {"provider": "test", "model": "test-model", "rag": False},
              "providers": {"test": server.provider_config(max_retries=0)},
              "tools": {"enabled": False, "allow": ["parley.search"]},
              "mcp_servers": {"files": stdio_config()}}
    (parley_home / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    await migrate(settings)
    async with Engine(settings) as engine:
        assert (await engine.library.run_ingest([write_corpus(tmp_path / "docs")])).indexed == 3
    return parley_home


def run(home: Path, database_url: str, *args: str,
        real: bool = False) -> subprocess.CompletedProcess[str]:
    return (parley if real else steps)("--db", database_url, *args, home=home)


def test_ask_with_tools_stream_json_events(home: Path, database_url: str,
                                           server: OpenAITestServer) -> None:
    server.tool_calls = calls_script([[{"name": "parley__search", "id": "c1",
                                        "arguments": {"query": "flux capacitor"}}]])
    result = run(home, database_url, "ask", "--new", "--tools", "--stream-json",
                 "What does the flux capacitor need?")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds.index("tool_call") < kinds.index("tool_result") < kinds.index("sources")
    call = next(e for e in events if e["type"] == "tool_call")
    assert (call["server"], call["tool"], call["decision"]) == ("parley", "search",
                                                                "allow_list")
    done = next(e for e in events if e["type"] == "tool_result")
    assert done["status"] == "ok" and "gigawatts" in done["result"]
    sources = next(e for e in events if e["type"] == "sources")
    assert sources["citations"][0]["path"].endswith("flux-manual.pdf")
    runs = run(home, database_url, "tools", "runs", "--json")
    assert [(r["tool"], r["status"]) for r in json.loads(runs.stdout)] == [("search", "ok")]
    session = next(e for e in events if e["type"] == "done")["session_id"]
    shown = run(home, database_url, "sessions", "show", str(session))
    assert 'tool parley.search {"query": "flux capacitor"} → ok (allow_list)' in shown.stdout


def test_ask_json_lists_tool_runs_and_no_terminal_denies(
        home: Path, database_url: str, server: OpenAITestServer) -> None:
    server.tool_calls = calls_script([[{"name": "files__echo", "arguments": {"text": "hi"}}]])
    result = run(home, database_url, "ask", "--new", "--tools", "--json", "Echo hi", real=True)
    assert result.returncode == 0, result.stderr
    (tool_run,) = json.loads(result.stdout)["tool_runs"]
    assert (tool_run["server"], tool_run["tool"], tool_run["status"],
            tool_run["decision"]) == ("files", "echo", "denied", "no_terminal")
    assert "no terminal to ask on" in result.stderr
    told = server.chat_requests[-1].json["messages"][-1]["content"]
    assert "no terminal" in told
    # --approve auto runs it (no documents in the prompt: the taint rule does not apply)
    plain = run(home, database_url, "ask", "--tools", "--approve", "auto", "Echo hi")
    assert plain.returncode == 0, plain.stderr
    assert "tool files.echo" in plain.stderr and "→ ok" in plain.stderr


def test_tools_list_call_and_bad_input(home: Path, database_url: str) -> None:
    listed = run(home, database_url, "tools", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    servers = {s["name"]: s for s in json.loads(listed.stdout)["servers"]}
    assert servers["files"]["state"] == "ready"
    policies = {t["canonical"]: t["policy"] for s in servers.values() for t in s["tools"]}
    assert policies["parley.search"] == "allow" and policies["files.add"] == "ask"
    called = run(home, database_url, "tools", "call", "files.add", "--args", '{"a": 2, "b": 3}')
    assert (called.returncode, called.stdout.strip()) == (0, "5")
    bad = run(home, database_url, "tools", "call", "files.add", "--args", "{oops", real=True)
    assert bad.returncode == 2 and "not valid JSON" in bad.stderr
    assert len(bad.stderr.strip().splitlines()) == 1
    missing = run(home, database_url, "tools", "call", "nosuch.tool", real=True)
    assert missing.returncode == 1 and "no tool server named 'nosuch'" in missing.stderr
    failed = run(home, database_url, "tools", "call", "files.fail", "--args",
                 '{"message": "disk full"}')
    assert failed.returncode == 1 and "disk full" in failed.stderr
    runs = run(home, database_url, "tools", "runs")
    assert "files.add" in runs.stdout and "by hand" in runs.stdout
