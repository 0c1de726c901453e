"""A team member saves and uses personas with tools (PostgreSQL, row-level security): the
persona keeps the session's tools, a chat started from it is offered exactly them, and
another member neither sees nor changes it, through Parley or raw SQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.openai_server import OpenAITestServer, calls_script
from tests.teams.test_teams import team  # noqa: F401  (the fixture)

SEARCH = [[{"name": "parley__search", "id": "c1", "arguments": {"query": "tea"}}]]


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply="Done.") as srv:
        yield srv


def _ok(out: Any) -> str:
    assert out.returncode == 0, out.stdout + out.stderr
    return str(out.stdout)


async def test_a_member_saves_and_uses_a_persona_with_tools(
        team, server: OpenAITestServer) -> None:  # noqa: F811
    db, owner, alice, bob = team
    config = {"chat": {"provider": "test", "model": "test-model", "rag": False},
              "providers": {"test": server.provider_config(max_retries=0)},
              "tools": {"enabled": False, "approval": "auto"},
              "personas": {"searcher": {"tools": "parley.search"}}}
    first = json.loads(_ok(alice.steps("ask", "--new", "--json", "Hi", config=config)))
    session = str(first["session_id"])
    _ok(alice.steps("sessions", "set", session, "--tools", "parley.search", config=config))
    _ok(alice.steps("personas", "save", "mine", "--from-session", session, config=config))
    shown = json.loads(_ok(alice.steps("personas", "show", "mine", "--json", config=config)))
    assert shown["tools"] == ["parley.search"]

    server.tool_calls = calls_script(SEARCH)
    before = len(server.chat_requests)
    asked = json.loads(_ok(alice.steps("ask", "--persona", "mine", "--json", "Search",
                                       config=config)))
    assert [r["tool"] for r in asked["tool_runs"]] == ["search"]
    assert [t["function"]["name"] for t in server.chat_requests[before].json["tools"]] == [
        "parley__search"]
    started = json.loads(_ok(alice.steps("sessions", "show", str(asked["session_id"]),
                                         "--json", config=config)))
    assert started["settings"]["tools"] == {"value": "parley.search", "from": "persona mine"}
    # a config persona's tools reach a member's new session the same way
    config_chat = json.loads(_ok(alice.steps("ask", "--persona", "searcher", "--json", "Hi",
                                             config=config)))
    shown = json.loads(_ok(alice.steps("sessions", "show", str(config_chat["session_id"]),
                                       "--json", config=config)))
    assert shown["settings"]["tools"]["from"] == "persona searcher"

    # bob: not his persona, through Parley (the real command) or SQL
    missing = bob.cli("personas", "show", "mine", config=config)
    assert missing.returncode == 1 and "no persona named 'mine'" in missing.stderr
    conn = await bob.sql()
    try:
        assert await conn.fetchval("SELECT count(*) FROM personas") == 0
        assert await conn.execute("UPDATE personas SET tools = '[]'") == "UPDATE 0"
        assert await conn.execute("UPDATE sessions SET tools_persona = 'x'") == "UPDATE 0"
    finally:
        await conn.close()
    conn = await alice.sql()
    try:
        rows = await conn.fetch("SELECT name, tools FROM personas")
        assert [(r["name"], json.loads(r["tools"])) for r in rows] == [
            ("mine", ["parley.search"])]
    finally:
        await conn.close()
