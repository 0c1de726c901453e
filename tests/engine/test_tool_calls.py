"""Streamed tool calls over real HTTP: every server style yields the same calls."""

from __future__ import annotations

import json

import pytest

from engine.config import ProviderSettings
from engine.providers.base import ChatMessage, TextDelta, ToolCall, ToolCalls, ToolSpec
from engine.providers.openai_chat import OpenAIChatProvider
from engine.providers.tool_calls import ToolCallAccumulator, wire_message
from tests.support.openai_server import OpenAITestServer

CALLS = [{"name": "files__read", "arguments": {"path": "notes/a b.txt", "lines": [1, 2]},
          "id": "call_read"},
         {"name": "parley__search", "arguments": {"query": "flux capacitor"}, "id": "call_s"}]
SPEC = ToolSpec("files__read", "Read a file", {"type": "object", "properties": {}})


async def _stream(srv: OpenAITestServer, **kw: object) -> list[object]:
    provider = OpenAIChatProvider("t", ProviderSettings(**srv.provider_config()))
    try:
        return [e async for e in provider.stream([ChatMessage("user", "hi")],
                                                 model="test-model", tools=[SPEC], **kw)]
    finally:
        await provider.aclose()


def _calls(events: list[object]) -> tuple[ToolCall, ...]:
    found = [e for e in events if isinstance(e, ToolCalls)]
    assert len(found) == 1
    return found[0].calls


@pytest.mark.parametrize("style", ["openai", "ollama", "llamacpp", "quirks"])
async def test_every_style_yields_the_same_calls(style: str) -> None:
    with OpenAITestServer(tool_calls=CALLS, tool_style=style) as srv:
        events = await _stream(srv)
        sent = srv.chat_requests[-1].json
    calls = _calls(events)
    assert [c.name for c in calls] == ["files__read", "parley__search"]
    assert [json.loads(c.arguments) for c in calls] == [c["arguments"] for c in CALLS]
    if style == "quirks":  # no ids on the wire: made up, distinct
        assert all(c.id.startswith("call_") for c in calls)
        assert calls[0].id != calls[1].id
    else:
        assert [c.id for c in calls] == ["call_read", "call_s"]
    assert sent["tools"][0]["function"]["name"] == "files__read"
    assert "tool_choice" not in sent  # Ollama refuses it


async def test_text_before_a_call_and_finish_reason_stop() -> None:
    with OpenAITestServer(tool_calls=CALLS[:1], tool_style="quirks",
                          tool_preamble="Let me look. ") as srv:
        events = await _stream(srv)
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    assert text == "Let me look. "
    assert _calls(events)[0].name == "files__read"
    assert events[-1].finish_reason == "stop"


async def test_invalid_json_arguments_arrive_as_written() -> None:
    broken = [{"name": "files__read", "arguments": '{"path": "a.txt"'}]
    with OpenAITestServer(tool_calls=broken) as srv:
        calls = _calls(await _stream(srv))
    assert calls[0].arguments == '{"path": "a.txt"'


async def test_no_tools_no_tools_key() -> None:
    with OpenAITestServer() as srv:
        provider = OpenAIChatProvider("t", ProviderSettings(**srv.provider_config()))
        events = [e async for e in provider.stream([ChatMessage("user", "hi")],
                                                   model="test-model")]
        await provider.aclose()
        assert "tools" not in srv.chat_requests[-1].json
    assert not any(isinstance(e, ToolCalls) for e in events)


def test_follow_up_messages_use_empty_content_not_null() -> None:
    call = ToolCall("call_1", "files__read", '{"path": "a"}')
    assistant = wire_message(ChatMessage("assistant", "", tool_calls=(call,)))
    assert assistant["content"] == ""
    assert assistant["tool_calls"][0] == {"id": "call_1", "type": "function", "function": {
        "name": "files__read", "arguments": '{"path": "a"}'}}
    assert wire_message(ChatMessage("tool", "result", tool_call_id="call_1")) == {
        "role": "tool", "tool_call_id": "call_1", "content": "result"}


def test_accumulator_rules() -> None:
    acc = ToolCallAccumulator()
    # integer id, fragmented name, then an Ollama-style second call at the same index
    acc.add([{"index": 0, "id": 7, "function": {"name": "files", "arguments": ""}}])
    acc.add([{"index": 0, "function": {"name": "__read", "arguments": "{}"}}])
    acc.add([{"index": 0, "id": "other", "function": {"name": "x__y", "arguments": "{}"}}])
    acc.add([{"index": 1, "function": {"arguments": "{}"}}])  # no name: dropped
    acc.add("garbage")
    calls = acc.calls()
    assert [(c.id, c.name) for c in calls] == [("7", "files__read"), ("other", "x__y")]


async def test_a_server_that_cannot_stream_with_tools_is_asked_unstreamed() -> None:
    with OpenAITestServer(tool_calls=CALLS, no_stream_tools=True,
                          tool_preamble="Let me see.") as srv:
        events = await _stream(srv)
        sent = [r.json for r in srv.chat_requests]
    assert [r.get("stream", False) for r in sent] == [True, False]
    assert "stream_options" not in sent[1] and sent[1]["tools"]
    assert "".join(e.text for e in events if isinstance(e, TextDelta)) == "Let me see."
    assert [(c.id, c.name) for c in _calls(events)] == [("call_read", "files__read"),
                                                        ("call_s", "parley__search")]
    assert events[-1].finish_reason == "tool_calls"
