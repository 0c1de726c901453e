"""The calls of one round run at the same time, against a real MCP server over Streamable
HTTP: ``wait_for(key)`` returns "released" only if ``release(key)`` ran while it waited,
so overlap shows in the results, not in timings."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from engine import Settings
from engine.config import MCPServerSettings
from engine.types import ToolCallFinished, ToolCallStarted
from tests.engine.tool_support import Approver, call, collect, configure, finished, open_engine
from tests.support.openai_server import OpenAITestServer, calls_script

pytestmark = pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply="Both done.") as srv:
        yield srv


def _two_calls(key: str, wait: float) -> list[list[dict]]:
    return [[call("remote__wait_for", "call_wait", key=key, seconds=wait),
             call("remote__release", "call_release", key=key)]]


async def test_calls_of_a_round_overlap_and_answer_in_the_models_order(
        settings: Settings, server: OpenAITestServer, mcp_url: str) -> None:
    # approval 'ask': both calls ask, one after the other, in the model's order
    configure(settings, server, allow=[], approval="ask", call_timeout=120.0)
    settings.mcp_servers = {"remote": MCPServerSettings(url=mcp_url)}
    server.tool_calls = calls_script(_two_calls("overlap-1", 90.0))
    approver = Approver("once")
    engine = await open_engine(settings)
    try:
        events = await collect(engine.chat.ask("Wait and release", approver=approver))
    finally:
        await engine.close()
    assert [q.tool for q in approver.asked] == ["wait_for", "release"]
    started = [e.call_id for e in events if isinstance(e, ToolCallStarted)]
    assert started == ["call_wait", "call_release"]
    # release started (and was asked about) while wait_for was still running: they overlap
    order = [(type(e).__name__, e.call_id) for e in events
             if isinstance(e, ToolCallStarted | ToolCallFinished)]
    assert order.index(("ToolCallStarted", "call_release")) < \
        order.index(("ToolCallFinished", "call_wait"))
    results = {r.call_id: (r.status, r.result) for r in finished(events)}
    assert results == {"call_wait": ("ok", "overlap-1: released"),
                       "call_release": ("ok", "released overlap-1")}
    # the answers went back in the model's order, each paired with its call id
    follow_up = server.chat_requests[-1].json["messages"]
    tool_messages = [(m["tool_call_id"], m["content"]) for m in follow_up
                     if m["role"] == "tool"]
    assert tool_messages == [("call_wait", "overlap-1: released"),
                             ("call_release", "released overlap-1")]
    (assistant,) = [m for m in follow_up if m["role"] == "assistant" and m.get("tool_calls")]
    assert [c["id"] for c in assistant["tool_calls"]] == ["call_wait", "call_release"]


async def test_parallel_calls_off_runs_them_one_after_another(
        settings: Settings, server: OpenAITestServer, mcp_url: str) -> None:
    configure(settings, server, allow=["remote.*"], parallel_calls=False)
    settings.mcp_servers = {"remote": MCPServerSettings(url=mcp_url)}
    server.tool_calls = calls_script(_two_calls("serial-1", 1.0))
    engine = await open_engine(settings)
    try:
        events = await collect(engine.chat.ask("Wait and release"))
    finally:
        await engine.close()
    ended = [e.call_id for e in events if isinstance(e, ToolCallFinished)]
    assert ended == ["call_wait", "call_release"]
    # release could only run after wait_for gave up: nothing overlapped
    assert [r.result for r in finished(events)] == ["serial-1: nobody released it",
                                                    "released serial-1"]
