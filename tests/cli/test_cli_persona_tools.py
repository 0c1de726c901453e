"""Personas carry a tool selection: a config persona's ``tools:`` key, ``personas save
--from-session`` keeping the session's tools, ``personas show``/``list`` printing them,
``ask --persona`` offering exactly them, and ``sessions show`` naming the persona as their
source. The scenario's steps run in-process on both backends; the bad config a user meets
first (a persona naming a tool server that is not configured) runs the real command."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine import Settings
from tests.cli.test_cli_foundation import parley, steps
from tests.conftest import migrate
from tests.support.mcp_launch import stdio_config
from tests.support.openai_server import OpenAITestServer, calls_script

SEARCH = [[{"name": "parley__search", "id": "c1", "arguments": {"query": "tea"}}]]


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply="Done.") as srv:
        yield srv


def config(server: OpenAITestServer, **extra: Any) -> dict[str, Any]:
    return {"chat": {"provider": "test", "model": "test-model", "rag": False},
            "providers": {"test": server.provider_config(max_retries=0)},
            "tools": {"enabled": False, "approval": "auto"},
            "personas": {"searcher": {"description": "Searches my notes",
                                      "tools": "parley.search"},
                         "plain": {"tools": "none"},
                         "default": {"model": "test-model"}},
            **extra}


def write(home: Path, values: dict[str, Any]) -> None:
    (home / "config.yaml").write_text(yaml.safe_dump(values), encoding="utf-8")


@pytest.fixture
async def home(settings: Settings, parley_home: Path, server: OpenAITestServer) -> Path:
    write(parley_home, config(server))
    await migrate(settings)
    return parley_home


@pytest.fixture
def run(home: Path, database_url: str) -> Any:
    def call(*args: str, real: bool = False) -> subprocess.CompletedProcess[str]:
        out = (parley if real else steps)("--db", database_url, *args, home=home)
        return out

    return call


def ok(out: subprocess.CompletedProcess[str]) -> str:
    assert out.returncode == 0, out.stderr
    return out.stdout


def offered(request: dict[str, Any]) -> list[str]:
    return [t["function"]["name"] for t in request.get("tools", [])]


def test_config_personas_show_and_list_their_tools(run: Any) -> None:
    shown = ok(run("personas", "show", "searcher"))
    assert "tools: parley.search\n" in shown
    assert "tools: none\n" in ok(run("personas", "show", "plain"))
    assert "tools: off (tools.enabled: false)\n" in ok(run("personas", "show", "default"))
    assert json.loads(ok(run("personas", "show", "searcher", "--json")))["tools"] == [
        "parley.search"]
    listed = {p["name"]: p["tools"] for p in json.loads(ok(run("personas", "list", "--json")))}
    assert listed == {"searcher": ["parley.search"], "plain": [], "default": None}
    text = ok(run("personas", "list"))
    assert "tools: parley.search" in text and "tools: none" in text


def test_ask_as_a_persona_offers_its_tools_and_save_keeps_a_sessions_tools(
        run: Any, server: OpenAITestServer, home: Path) -> None:
    # tools.enabled is false, yet the persona's chat is offered exactly its tool
    server.tool_calls = calls_script(SEARCH)
    asked = json.loads(ok(run("ask", "--persona", "searcher", "--json", "Search my notes")))
    assert [r["tool"] for r in asked["tool_runs"]] == ["search"]
    assert offered(server.chat_requests[0].json) == ["parley__search"]
    session = str(asked["session_id"])
    settings = json.loads(ok(run("sessions", "show", session, "--json")))["settings"]
    assert settings["tools"] == {"value": "parley.search", "from": "persona searcher"}
    assert "tools: parley.search  (persona searcher)\n" in ok(run("sessions", "show", session))
    # an exported session keeps where its tools came from
    exported = ok(run("sessions", "export", session, "--format", "json"))
    assert json.loads(exported)["session"]["tools_persona"] == "searcher"
    copy_file = home / "exported.json"
    copy_file.write_text(exported, encoding="utf-8")
    copy = ok(run("sessions", "import", str(copy_file))).strip()
    assert "tools: parley.search  (persona searcher)\n" in ok(run("sessions", "show", copy))

    # the session's tools, once changed, are the session's own; a persona saved from it
    # keeps them (none here), and a chat started from that persona offers none
    assert "tools: none\n" in ok(run("sessions", "set", session, "--no-tools"))
    settings = json.loads(ok(run("sessions", "show", session, "--json")))["settings"]
    assert settings["tools"] == {"value": "none", "from": "session"}
    ok(run("personas", "save", "quiet", "--from-session", session))
    quiet = json.loads(ok(run("personas", "show", "quiet", "--json")))
    assert (quiet["origin"], quiet["tools"]) == ("saved", [])
    before = len(server.chat_requests)
    again = json.loads(ok(run("ask", "--persona", "quiet", "--json", "--tools", "Hi")))
    assert offered(server.chat_requests[before].json) == ["parley__search"]  # --tools wins
    again = json.loads(ok(run("ask", "--persona", "quiet", "--json", "Hi")))
    assert offered(server.chat_requests[-1].json) == []
    settings = json.loads(ok(run("sessions", "show", str(again["session_id"]),
                                 "--json")))["settings"]
    assert settings["tools"] == {"value": "none", "from": "persona quiet"}

    # globs and several names come back as the session had them; replacing works
    assert ok(run("sessions", "set", session, "--tools", "parley.*"))
    ok(run("personas", "save", "quiet", "--from-session", session, "--replace"))
    assert json.loads(ok(run("personas", "show", "quiet", "--json")))["tools"] == ["parley.*"]
    # a session following the configuration saves a persona that does too
    ok(run("sessions", "set", session, "--default-tools"))
    ok(run("personas", "save", "follows", "--from-session", session))
    follows = json.loads(ok(run("personas", "show", "follows", "--json")))
    assert follows["tools"] is None
    started = json.loads(ok(run("ask", "--persona", "follows", "--json", "Hi")))
    assert offered(server.chat_requests[-1].json) == []  # tools.enabled: false
    settings = json.loads(ok(run("sessions", "show", str(started["session_id"]),
                                 "--json")))["settings"]
    assert settings["tools"]["from"] == "config"


def test_a_saved_persona_whose_server_is_gone_is_refused_by_name(
        run: Any, home: Path, server: OpenAITestServer) -> None:
    write(home, config(server, mcp_servers={"files": stdio_config()}))
    session = str(json.loads(ok(run("ask", "--new", "--json", "Hi")))["session_id"])
    ok(run("sessions", "set", session, "--tools", "files.*"))
    ok(run("personas", "save", "filer", "--from-session", session))
    write(home, config(server))  # the 'files' server is removed from the config
    before = len(server.chat_requests)
    refused = run("ask", "--persona", "filer", "Read a file")
    assert refused.returncode == 2
    assert "persona 'filer': no tool server matches 'files'" in refused.stderr
    assert len(server.chat_requests) == before  # nothing was asked, nothing stored
    assert json.loads(ok(run("personas", "show", "filer", "--json")))["tools"] == ["files.*"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_config_persona_naming_an_unknown_tool_server_is_a_config_error(
        run: Any, home: Path, server: OpenAITestServer) -> None:
    values = config(server)
    values["personas"]["broken"] = {"tools": ["parley.search", "github.*"]}
    write(home, values)
    result = run("personas", "list", real=True)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "persona 'broken'" in lines[0]
    assert "no tool server matches 'github'" in lines[0]
    values["personas"]["broken"] = {"tools": "search"}  # not SERVER.TOOL
    write(home, values)
    result = run("ask", "--persona", "searcher", "Hi", real=True)
    assert result.returncode == 2 and "persona 'broken'" in result.stderr
    assert "'search' is not a tool name" in result.stderr
