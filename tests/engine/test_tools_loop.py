"""The tool loop inside a turn, with Parley's own search as the tool, on both backends."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select, text

from engine import Engine, Settings
from engine.db import models as m
from engine.errors import BudgetExceeded
from engine.types import Done, Sources, ToolCallStarted
from tests.engine.chat_support import write_corpus
from tests.engine.tool_support import (
    Approver,
    call,
    collect,
    configure,
    finished,
    open_engine,
    text_of,
)
from tests.support.openai_server import OpenAITestServer, calls_script

SEARCH = "parley__search"


def cite_tool_result(request: dict) -> str:
    """Round 2: cite the passage the search tool returned that mentions gigawatts."""
    for message in request["messages"]:
        if message.get("role") == "tool" and "gigawatts" in message["content"]:
            marker = message["content"].split("gigawatts")[0].rsplit("\n[", 1)[1].split("]")[0]
            return f"It needs 1.21 gigawatts [{marker}]."
    return "I found nothing."


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply=cite_tool_result, chunk_size=8) as srv:
        yield srv


@pytest.fixture
async def tool_engine(settings: Settings, server: OpenAITestServer,
                      tmp_path: Path) -> AsyncIterator[Engine]:
    configure(settings, server)
    settings.chat.rag = False  # the tool is the only way to the documents
    engine = await open_engine(settings)
    try:
        result = await engine.library.run_ingest([write_corpus(tmp_path / "docs")])
        assert result.indexed == 3
        yield engine
    finally:
        await engine.close()


async def test_two_round_answer_cites_what_the_search_tool_found(
        tool_engine: Engine, server: OpenAITestServer) -> None:
    server.tool_calls = calls_script([[call(SEARCH, "call_1", query="flux capacitor power")]])
    events = await collect(tool_engine.chat.ask("What does the flux capacitor need?"))
    done = next(e for e in events if isinstance(e, Done))
    sources = next(e for e in events if isinstance(e, Sources))
    assert done.status == "complete"
    assert text_of(events).startswith("It needs 1.21 gigawatts [")
    assert [c.path.endswith("flux-manual.pdf") and c.page == 2 for c in sources.citations] == [
        True]
    (result,) = finished(events)
    assert (result.server, result.tool, result.status, result.decision) == (
        "parley", "search", "ok", "allow_list")
    # round 2 carries the assistant's call (content "" not null) and its tool answer
    follow_up = server.chat_requests[-1].json["messages"]
    assistant, tool = follow_up[-2], follow_up[-1]
    assert assistant["content"] == "" and assistant["tool_calls"][0]["id"] == "call_1"
    assert tool["role"] == "tool" and tool["tool_call_id"] == "call_1"
    assert "gigawatts" in tool["content"]
    runs = await tool_engine.tools.runs(done.session_id)
    assert [(r.tool, r.status, r.message_id) for r in runs] == [("search", "ok", done.message_id)]
    assert json.loads(runs[0].arguments) == {"query": "flux capacitor power"}
    async with tool_engine.db.read() as s:  # one usage row per round
        rows = (await s.scalars(select(m.TokenUsage).where(
            m.TokenUsage.message_id == done.message_id, m.TokenUsage.kind == "chat"))).all()
    assert len(rows) == 2
    assert done.usage.prompt_tokens == sum(r.prompt_tokens for r in rows)


async def test_history_replays_calls_paired_with_results(
        tool_engine: Engine, server: OpenAITestServer) -> None:
    server.tool_calls = calls_script([[call(SEARCH, "call_1", query="flux capacitor")]])
    first = await collect(tool_engine.chat.ask("What does the flux capacitor need?", new=True))
    session = next(e for e in first if isinstance(e, Done)).session_id
    server.tool_calls = None
    await collect(tool_engine.chat.ask("And where is it stored?", session_id=session))
    messages = server.chat_requests[-1].json["messages"]
    roles = [msg["role"] for msg in messages]
    assert roles == ["system", "user", "assistant", "tool", "assistant", "user"]
    assert messages[2]["tool_calls"][0]["id"] == messages[3]["tool_call_id"] == "call_1"
    assert messages[4]["content"].startswith("It needs 1.21 gigawatts")


async def test_max_rounds_last_request_has_no_tools(
        tool_engine: Engine, server: OpenAITestServer) -> None:
    tool_engine.settings.tools.max_rounds = 3
    server.tool_calls = lambda request: [call(SEARCH, query=f"q{len(request['messages'])}")]
    events = await collect(tool_engine.chat.ask("Loop forever"))
    assert next(e for e in events if isinstance(e, Done)).status == "complete"
    requests = server.chat_requests
    assert len(requests) == 3
    assert all("tools" in r.json for r in requests[:2]) and "tools" not in requests[2].json
    assert len(finished(events)) == 2


async def test_max_calls_and_loop_guard_refuse_with_a_reason(
        tool_engine: Engine, server: OpenAITestServer) -> None:
    tool_engine.settings.tools.max_calls = 3
    same = call(SEARCH, query="flux")
    server.tool_calls = calls_script([[same, same, same, call(SEARCH, query="other")]])
    events = await collect(tool_engine.chat.ask("Search a lot"))
    results = finished(events)
    assert [(r.status, r.decision) for r in results] == [
        ("ok", "allow_list"), ("ok", "allow_list"), ("denied", "repeat"), ("denied", "limit")]
    assert "already ran 2 times" in results[2].result
    tools_answers = [msg for msg in server.chat_requests[-1].json["messages"]
                     if msg["role"] == "tool"]
    assert len(tools_answers) == 4  # every call id answered
    assert "tools" not in server.chat_requests[-1].json  # the call limit ends the offers


async def test_invalid_json_and_unknown_tool_become_error_results(
        tool_engine: Engine, server: OpenAITestServer) -> None:
    server.tool_calls = calls_script([[{"name": SEARCH, "arguments": '{"query": "fl'},
                                       call("nosuch__tool", q=1)]])
    events = await collect(tool_engine.chat.ask("Break things"))
    bad_json, unknown = finished(events)
    assert (bad_json.status, bad_json.decision) == ("error", "invalid")
    assert "not valid JSON" in bad_json.result
    assert (unknown.status, unknown.decision) == ("error", "unknown")
    assert SEARCH in unknown.result
    sent = server.chat_requests[-1].json["messages"]
    assert sent[-3]["tool_calls"][0]["function"]["arguments"] == "{}"
    assert sent[-2]["content"].startswith("Error: the arguments were not valid JSON")


@pytest.mark.parametrize("answer, status, decision", [
    ("once", "ok", "once"), ("session", "ok", "session"), ("always", "ok", "always"),
    ("deny", "denied", "denied")])
async def test_each_approval_answer(tool_engine: Engine, server: OpenAITestServer,
                                    answer: str, status: str, decision: str) -> None:
    tool_engine.settings.tools.allow = []
    approver = Approver(answer)
    server.tool_calls = calls_script([[call(SEARCH, query="flux")]])
    events = await collect(tool_engine.chat.ask("Q", new=True, approver=approver))
    (result,) = finished(events)
    assert (result.status, result.decision) == (status, decision)
    assert approver.asked[0].server == "parley" and '"query": "flux"' in approver.asked[0].arguments
    session = next(e for e in events if isinstance(e, Done)).session_id
    # the next call in the same session: asked again unless "session" or "always"
    await collect(tool_engine.chat.ask("Q2", session_id=session, approver=approver))
    assert len(approver.asked) == (1 if answer in ("session", "always") else 2)
    # in a new session only "always" still holds
    await collect(tool_engine.chat.ask("Q3", new=True, approver=approver))
    assert len(approver.asked) == {"once": 3, "session": 2, "always": 1, "deny": 3}[answer]
    if answer == "deny":
        assert "refused" in server.chat_requests[-1].json["messages"][-1]["content"]


async def test_no_terminal_denies_and_tells_the_model(
        tool_engine: Engine, server: OpenAITestServer) -> None:
    tool_engine.settings.tools.allow = []
    server.tool_calls = calls_script([[call(SEARCH, query="flux")]])
    events = await collect(tool_engine.chat.ask("Q"))
    (result,) = finished(events)
    assert (result.status, result.decision) == ("denied", "no_terminal")
    assert "no terminal" in server.chat_requests[-1].json["messages"][-1]["content"]


async def test_never_refuses_and_deny_is_never_offered(
        tool_engine: Engine, server: OpenAITestServer) -> None:
    tool_engine.settings.tools.allow = []
    server.tool_calls = calls_script([[call(SEARCH, query="flux")]])
    events = await collect(tool_engine.chat.ask("Q", approval="never", approver=Approver()))
    assert [(r.status, r.decision) for r in finished(events)] == [("denied", "never")]
    tool_engine.settings.tools.deny = ["parley.*"]
    tool_engine.settings.tools.allow = ["parley.search"]  # deny beats allow
    before = len(server.chat_requests)
    await collect(tool_engine.chat.ask("Q again", approver=Approver()))
    assert "tools" not in server.chat_requests[before].json  # nothing left to offer


async def test_taint_rule_asks_under_auto_while_sources_are_in_the_prompt(
        tool_engine: Engine, server: OpenAITestServer) -> None:
    tool_engine.settings.tools.allow = []
    tool_engine.settings.chat.rag = True  # retrieved passages are in the prompt
    approver = Approver("deny")
    server.tool_calls = calls_script([[call(SEARCH, query="flux")]])
    await collect(tool_engine.chat.ask("What does the flux capacitor need?", new=True,
                                       approval="auto", approver=approver))
    assert len(approver.asked) == 1 and "retrieved passage" in approver.asked[0].reason
    tool_engine.settings.chat.rag = False  # no sources: auto runs without asking
    events = await collect(tool_engine.chat.ask("Again", new=True, approval="auto",
                                                approver=approver))
    assert len(approver.asked) == 1
    assert [r.decision for r in finished(events)] == ["auto"]


async def test_budget_is_checked_before_every_round(
        tool_engine: Engine, server: OpenAITestServer) -> None:
    server.usage = (100_000, 10)  # each round costs about 0.30: round 2 would pass 0.2
    tool_engine.settings.chat.budget.daily = 0.2
    tool_engine.settings.chat.budget.action = "refuse"
    server.tool_calls = calls_script([[call(SEARCH, query="a")], [call(SEARCH, query="b")]])
    with pytest.raises(BudgetExceeded):
        await collect(tool_engine.chat.ask("Spend", new=True))
    assert len(server.chat_requests) == 1  # round 2 was refused before the call
    async with tool_engine.db.read() as s:
        message = await s.scalar(select(m.Message).where(m.Message.role == "assistant"))
        runs = (await s.scalars(select(m.ToolRun))).all()
    assert message.status == "error" and len(runs) == 1  # what happened is kept


async def test_tool_runs_are_stored_as_tokens_and_cascade(
        tool_engine: Engine, server: OpenAITestServer, backend: str) -> None:
    server.tool_calls = calls_script([[call(SEARCH, query="flux capacitor secretword")]])
    events = await collect(tool_engine.chat.ask("Q", new=True))
    session = next(e for e in events if isinstance(e, Done)).session_id
    async with tool_engine.db.read() as s:
        raw = (await s.execute(text("SELECT arguments, result, error FROM tool_runs"))).one()
    assert raw[0].startswith("gAAAA") and raw[1].startswith("gAAAA") and raw[2] is None
    assert "secretword" not in raw[0] and "gigawatts" not in raw[1]
    await tool_engine.sessions.delete(session)
    async with tool_engine.db.read() as s:
        assert await s.scalar(text("SELECT count(*) FROM tool_runs")) == 0


async def test_tool_events_arrive_before_the_results(
        tool_engine: Engine, server: OpenAITestServer) -> None:
    server.tool_calls = calls_script([[call(SEARCH, "c1", query="flux")]])
    events = await collect(tool_engine.chat.ask("Q"))
    kinds = [type(e).__name__ for e in events if not type(e).__name__ == "Delta"]
    # the scope of the chat comes first (what it searches), then the calls, then the text
    assert kinds[:3] == ["Searched", "ToolCallStarted", "ToolCallFinished"]
    started = next(e for e in events if isinstance(e, ToolCallStarted))
    assert started.call_id == "c1" and started.round == 1


async def test_export_and_import_carry_the_tool_runs(
        tool_engine: Engine, server: OpenAITestServer) -> None:
    server.tool_calls = calls_script([[call(SEARCH, "call_x", query="flux capacitor")]])
    events = await collect(tool_engine.chat.ask("Q", new=True))
    session = next(e for e in events if isinstance(e, Done)).session_id
    exported = await tool_engine.sessions.export(session)
    doc = json.loads(exported)
    (run,) = doc["messages"][-1]["tool_runs"]
    assert (run["tool"], run["call_id"], run["status"]) == ("search", "call_x", "ok")
    imported = await tool_engine.sessions.import_(exported)
    runs = await tool_engine.tools.runs(imported.session.id)
    assert [(r.call_id, r.status) for r in runs] == [("call_x", "ok")]
    assert "gigawatts" in (runs[0].result or "")
    assert await tool_engine.sessions.export(imported.session.id) == exported
