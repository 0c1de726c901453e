"""Chat providers against a real OpenAI-compatible server on 127.0.0.1, and the extractive one."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from engine.config import ProviderSettings, Settings
from engine.errors import (
    ConfigError,
    ContextTooLong,
    ProviderAuthError,
    ProviderError,
    ProviderUnreachable,
    StreamInterrupted,
    UnknownModel,
)
from engine.providers.base import (
    ChatMessage,
    ChatProvider,
    ProviderEvent,
    SourceText,
    StreamEnd,
    StreamUsage,
    TextDelta,
)
from engine.providers.extractive import ExtractiveProvider, extract
from engine.providers.openai_chat import OpenAIChatProvider
from engine.providers.registry import make_chat_provider
from tests.support.openai_server import OpenAITestServer

QUESTION = [ChatMessage("system", "Answer from the sources."),
            ChatMessage("user", "What is the capital of France?")]
REPLY = "Paris is the capital of France [1]. It sits on the Seine [2]."


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply=REPLY, chunk_size=5) as srv:
        yield srv


@pytest.fixture
async def make_provider(server: OpenAITestServer) -> AsyncIterator[Any]:
    made: list[OpenAIChatProvider] = []

    def make(**settings: Any) -> OpenAIChatProvider:
        config = ProviderSettings(**server.provider_config(**settings))
        provider = OpenAIChatProvider("local", config, retry_backoff=0.01)
        made.append(provider)
        return provider

    yield make
    for provider in made:
        await provider.aclose()


async def collect(provider: ChatProvider, model: str = "test-model",
                  into: list[ProviderEvent] | None = None) -> list[ProviderEvent]:
    events = [] if into is None else into
    async for event in provider.stream(QUESTION, model=model):
        events.append(event)
    return events


def text_of(events: list[ProviderEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


async def test_streams_deltas_usage_and_end_as_sent(server: OpenAITestServer,
                                                    make_provider: Any) -> None:
    server.usage = (123, 45)
    events = await collect(make_provider())
    deltas = [e.text for e in events if isinstance(e, TextDelta)]
    assert deltas == [REPLY[i:i + 5] for i in range(0, len(REPLY), 5)]
    assert events[-2:] == [StreamUsage(123, 45), StreamEnd("stop")]
    body = server.chat_requests[0].json
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"][1] == {"role": "user", "content": "What is the capital of France?"}


async def test_usage_inside_the_last_content_chunk(server: OpenAITestServer,
                                                   make_provider: Any) -> None:
    server.usage, server.usage_in_last_chunk = (7, 3), True
    events = await collect(make_provider())
    assert text_of(events) == REPLY
    assert [e for e in events if isinstance(e, StreamUsage)] == [StreamUsage(7, 3)]


async def test_bearer_key_from_the_env_var(server: OpenAITestServer, make_provider: Any,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    server.api_key = "sk-test-123"
    monkeypatch.setenv("PARLEY_TEST_KEY", "sk-test-123")
    events = await collect(make_provider(api_key=None, api_key_env="PARLEY_TEST_KEY"))
    assert text_of(events) == REPLY
    assert server.chat_requests[0].headers["authorization"] == "Bearer sk-test-123"


async def test_no_authorization_header_without_a_key(server: OpenAITestServer,
                                                     make_provider: Any) -> None:
    await collect(make_provider())
    assert "authorization" not in server.chat_requests[0].headers


async def test_refused_key_names_the_env_var(server: OpenAITestServer, make_provider: Any,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    server.api_key = "sk-right"
    monkeypatch.setenv("PARLEY_TEST_KEY", "sk-wrong")
    provider = make_provider(api_key=None, api_key_env="PARLEY_TEST_KEY")
    with pytest.raises(ProviderAuthError) as caught:
        await collect(provider)
    assert "PARLEY_TEST_KEY" in (caught.value.hint or "")
    assert len(server.chat_requests) == 1  # an auth failure is not retried


async def test_unknown_model_lists_the_servers_models(server: OpenAITestServer,
                                                      make_provider: Any) -> None:
    server.models = ["llama3", "qwen2.5"]
    with pytest.raises(UnknownModel) as caught:
        await collect(make_provider(), model="gpt-nope")
    assert "gpt-nope" in str(caught.value)
    assert "llama3" in (caught.value.hint or "") and "qwen2.5" in (caught.value.hint or "")


async def test_context_too_long(server: OpenAITestServer, make_provider: Any) -> None:
    server.context_limit = 5
    with pytest.raises(ContextTooLong):
        await collect(make_provider())


async def test_hangup_mid_stream_keeps_partial_text_and_is_not_retried(
        server: OpenAITestServer, make_provider: Any) -> None:
    server.hangup_after = 3
    events: list[ProviderEvent] = []
    with pytest.raises(StreamInterrupted):
        await collect(make_provider(max_retries=3), into=events)
    assert text_of(events) == REPLY[:15]
    assert not any(isinstance(e, StreamEnd) for e in events)
    assert len(server.chat_requests) == 1


async def test_server_that_never_answers_fails_within_the_timeout(
        server: OpenAITestServer, make_provider: Any) -> None:
    server.never_answer = True
    provider = make_provider(timeout=0.5, connect_timeout=0.5)
    # The guard only keeps a regression from hanging the suite; it is not a timing check.
    async with asyncio.timeout(30):
        with pytest.raises((ProviderUnreachable, StreamInterrupted)) as caught:
            await collect(provider)
    assert "0.5" in str(caught.value)
    assert "timeout" in (caught.value.hint or "")


async def test_retries_a_500_before_the_first_token(server: OpenAITestServer,
                                                     make_provider: Any) -> None:
    server.fail_next = 1
    events = await collect(make_provider(max_retries=2))
    assert text_of(events) == REPLY
    assert [r.status for r in server.chat_requests] == [500, 200]


async def test_gives_up_after_max_retries(server: OpenAITestServer, make_provider: Any) -> None:
    server.fail_next, server.fail_status = 10, 503
    with pytest.raises(ProviderError) as caught:
        await collect(make_provider(max_retries=2))
    assert "503" in str(caught.value)
    assert len(server.chat_requests) == 3


async def test_closing_the_stream_closes_the_connection(server: OpenAITestServer,
                                                       make_provider: Any) -> None:
    server.chunk_delay = 0.05
    stream = make_provider().stream(QUESTION, model="test-model")
    received = [await anext(stream), await anext(stream)]
    assert all(isinstance(e, TextDelta) for e in received)
    await stream.aclose()
    await asyncio.to_thread(server.wait_for, lambda: server.chat_requests[0].disconnected)


async def test_cancelling_the_consumer_closes_the_connection(server: OpenAITestServer,
                                                            make_provider: Any) -> None:
    server.chunk_delay = 0.05
    provider = make_provider()
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in provider.stream(QUESTION, model="test-model"):
            first.set()

    task = asyncio.create_task(consume())
    await first.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    await asyncio.to_thread(server.wait_for, lambda: server.chat_requests[0].disconnected)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_unreachable_port_names_the_url() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    provider = OpenAIChatProvider("local", ProviderSettings(base_url=url, max_retries=1),
                                  retry_backoff=0.01)
    try:
        with pytest.raises(ProviderUnreachable) as caught:
            await collect(provider)
        assert url in str(caught.value)
        with pytest.raises(ProviderUnreachable):
            await provider.list_models()
    finally:
        await provider.aclose()


async def test_list_models_times_out_on_a_silent_listener() -> None:
    with socket.socket() as listener:  # accepts connections (backlog) and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}/v1"
        provider = OpenAIChatProvider("local", ProviderSettings(base_url=url, timeout=0.5))
        try:
            with pytest.raises(ProviderUnreachable, match="did not answer"):
                await provider.list_models()
        finally:
            await provider.aclose()


async def test_list_models(server: OpenAITestServer, make_provider: Any) -> None:
    assert await make_provider().list_models() == ["test-model", "test-embedding"]


SOURCES = [
    SourceText(1, "Berlin is the capital of Germany. It has many museums.", "de.md"),
    SourceText(2, "France is in Europe. Paris is the capital of France and its largest "
                  "city. The Seine flows through Paris.", "fr.md"),
    SourceText(3, "Bananas are rich in potassium.", "food.txt"),
]


async def test_extractive_answer_cites_the_matching_sources() -> None:
    question = [ChatMessage("user", "What is the capital of France?")]
    events = [e async for e in ExtractiveProvider().stream(question, model="x", sources=SOURCES)]
    text = text_of(events)
    assert text.startswith("Extractive answer (no model configured)")
    first_bullet = text.split("\n- ")[1]
    assert first_bullet.startswith("Paris is the capital of France") and "[2]" in first_bullet
    assert "[3]" not in text
    assert events[-1] == StreamEnd("stop")
    assert not any(isinstance(e, StreamUsage) for e in events)


async def test_extractive_without_sources_says_how_to_add_documents() -> None:
    events = [e async for e in ExtractiveProvider().stream(
        [ChatMessage("user", "anything?")], model="x")]
    assert "nothing relevant" in text_of(events) and "parley ingest PATH" in text_of(events)


def test_extract_falls_back_to_the_top_sources_when_no_word_matches() -> None:
    assert extract("zzz qqq", SOURCES)[0] == ("Berlin is the capital of Germany.", 1)


async def test_registry_builds_each_kind(server: OpenAITestServer) -> None:
    settings = Settings(providers={"local": server.provider_config(),
                                   "offline": {"kind": "extractive"}})
    assert isinstance(make_chat_provider(settings, None), ExtractiveProvider)
    assert make_chat_provider(settings, "offline").name == "offline"
    provider = make_chat_provider(settings, "local")
    try:
        assert isinstance(provider, OpenAIChatProvider) and provider.is_local
        assert isinstance(provider, ChatProvider)
    finally:
        await provider.aclose()
    with pytest.raises(ConfigError, match="nope"):
        make_chat_provider(settings, "nope")
