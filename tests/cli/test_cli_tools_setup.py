"""``parley sessions set --tools`` and the first-use trust question for local MCP servers,
through the real command in a subprocess: with no terminal, and on a pseudo-terminal where
a person answers."""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import Engine, Settings
from tests.cli.test_cli_foundation import REPO, parley, steps
from tests.conftest import migrate
from tests.engine.chat_support import write_corpus
from tests.support.mcp_launch import stdio_config
from tests.support.openai_server import OpenAITestServer, calls_script

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply="Done.") as srv:
        yield srv


def _write_config(home: Path, server: OpenAITestServer, **files: Any) -> None:
    config = {"chat": {"provider": "test", "model": "test-model", "rag": False},
              "providers": {"test": server.provider_config(max_retries=0)},
              "tools": {"enabled": False, "allow": ["parley.search", "files.*"]},
              "mcp_servers": {"files": stdio_config(trusted=False, **files)}}
    (home / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


@pytest.fixture
async def home(settings: Settings, parley_home: Path, server: OpenAITestServer,
               tmp_path: Path) -> Path:
    _write_config(parley_home, server)
    await migrate(settings)
    async with Engine(settings) as engine:
        assert (await engine.library.run_ingest([write_corpus(tmp_path / "docs")])).indexed == 3
    return parley_home


def run(home: Path, database_url: str, *args: str,
        real: bool = False) -> subprocess.CompletedProcess[str]:
    return (parley if real else steps)("--db", database_url, *args, home=home)


def on_terminal(home: Path, database_url: str, *args: str,
                answer: str) -> tuple[int, str, str]:
    """Run with stdin and stderr on a pseudo-terminal; answer the first question asked.
    Returns (exit code, stdout, what the terminal showed)."""
    master, slave = pty.openpty()
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update({"PARLEY_HOME": str(home), "TERM": "dumb"})
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "--db", database_url, *args],
                            cwd=REPO, env=env, stdin=slave, stderr=slave,
                            stdout=subprocess.PIPE, text=True)
    os.close(slave)
    shown: list[bytes] = []
    asked = threading.Event()

    def read() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the child closed the terminal
                return
            if not chunk:
                return
            shown.append(chunk)
            if b"Start it?" in b"".join(shown):
                asked.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    deadline = time.monotonic() + 180
    while not asked.is_set() and proc.poll() is None and time.monotonic() < deadline:
        asked.wait(0.2)
    if asked.is_set():
        os.write(master, answer.encode())
    stdout, _ = proc.communicate(timeout=180)
    reader.join(10)
    os.close(master)
    return proc.returncode, stdout, b"".join(shown).decode(errors="replace")


def test_a_new_local_server_command_is_confirmed_first(
        home: Path, database_url: str, server: OpenAITestServer) -> None:
    add = ("tools", "call", "files.add", "--args", '{"a": 2, "b": 3}')
    # no terminal: refused, one line, nothing started or stored
    listed = run(home, database_url, "tools", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    files = next(s for s in json.loads(listed.stdout)["servers"] if s["name"] == "files")
    assert files["state"] == "untrusted" and files["tools"] == []
    assert "--trust-servers" in files["error"]
    refused = run(home, database_url, *add, real=True)
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "has not been confirmed" in refused.stderr
    assert "mcp_servers.files.trusted: true" in refused.stderr
    # a person says no, then yes
    code, _, shown = on_terminal(home, database_url, *add, answer="n\n")
    assert code == 2 and "tests.support.mcp_server stdio" in shown
    code, out, shown = on_terminal(home, database_url, *add, answer="y\n")
    assert (code, out.strip()) == (0, "5"), shown
    assert "about to start (it has not run before)" in shown
    # remembered: no terminal needed any more
    again = run(home, database_url, *add)
    assert (again.returncode, again.stdout.strip()) == (0, "5"), again.stderr
    # a changed command line asks again; --trust-servers runs it without storing
    _write_config(home, server, args=["-m", "tests.support.mcp_server", "stdio", "--changed"])
    changed = run(home, database_url, *add)
    assert changed.returncode == 2 and "changed since you trusted it" in changed.stderr
    trusted = run(home, database_url, *add, "--trust-servers")
    assert (trusted.returncode, trusted.stdout.strip()) == (0, "5"), trusted.stderr
    assert run(home, database_url, *add).returncode == 2
    forgot = run(home, database_url, "tools", "untrust", "files")
    assert forgot.returncode == 0 and "forgot 1 trusted command line of server 'files'" \
        in forgot.stderr
    # ask goes on without the untrusted server, and says why
    server.tool_calls = calls_script([[{"name": "parley__search", "id": "c1",
                                        "arguments": {"query": "flux"}}]])
    asked = run(home, database_url, "ask", "--new", "--tools", "What is flux?")
    assert asked.returncode == 0, asked.stderr
    assert "MCP server 'files' was not started" in asked.stderr
    assert [t["function"]["name"] for t in server.chat_requests[0].json["tools"]] == [
        "parley__search"]


def test_sessions_set_tools_chooses_what_ask_offers(
        home: Path, database_url: str, server: OpenAITestServer) -> None:
    first = run(home, database_url, "ask", "--new", "--json", "Hello")
    assert first.returncode == 0, first.stderr
    session = str(json.loads(first.stdout)["session_id"])
    assert "tools" not in server.chat_requests[-1].json  # tools.enabled: false
    chosen = run(home, database_url, "sessions", "set", session, "--tools", "parley.search")
    assert chosen.returncode == 0, chosen.stderr
    assert "tools: parley.search\n" in chosen.stdout
    server.tool_calls = calls_script([[{"name": "parley__search", "id": "c1",
                                        "arguments": {"query": "flux"}}]])
    asked = run(home, database_url, "ask", "--session", session, "--json", "Search it")
    assert asked.returncode == 0, asked.stderr
    assert [r["tool"] for r in json.loads(asked.stdout)["tool_runs"]] == ["search"]
    # only the chosen tool was offered: the untrusted 'files' server was not even started
    assert [t["function"]["name"] for t in server.chat_requests[-2].json["tools"]] == [
        "parley__search"]
    assert "files" not in asked.stderr
    off = run(home, database_url, "sessions", "set", session, "--no-tools", "--json")
    assert json.loads(off.stdout)["tools"] == {"value": "none", "from": "session"}
    run(home, database_url, "ask", "--session", session, "Again")
    assert "tools" not in server.chat_requests[-1].json
    shown = run(home, database_url, "sessions", "show", session)
    assert "tools: none" in shown.stdout
    back = run(home, database_url, "sessions", "set", session, "--default-tools")
    assert "tools: off (tools.enabled: false)  (config)" in back.stdout
    for n, (bad, message) in enumerate((
            (("--tools", "nosuch.tool"), "no tool server matches 'nosuch'"),
            (("--tools", "search"), "not a tool name"),
            (("--tools", "parley.search", "--no-tools"), "cannot be combined"))):
        result = run(home, database_url, "sessions", "set", session, *bad, real=n == 0)
        assert result.returncode == 2 and message in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1
