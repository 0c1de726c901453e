"""Chat turns against a real OpenAI-compatible server on 127.0.0.1, on both backends.

Documents are ingested with the real pipeline (bundled embedder); the server's reply cites
whichever numbered source of the prompt holds a fact, as a grounded model would.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from engine import Engine, Settings
from engine.config import ProviderSettings
from engine.db import models as m
from engine.errors import (
    BudgetExceeded,
    ContextTooLong,
    NotFound,
    ProviderAuthError,
    ProviderUnreachable,
    StreamInterrupted,
    UnknownModel,
    UsageError,
)
from engine.chat.turn import ChatEvent
from engine.types import BudgetWarning, Delta, Done, Searched, Sources
from tests.conftest import migrate
from tests.engine.chat_support import MARKDOWN_FACT_LINE, citing, sources_of, write_corpus
from tests.support.openai_server import OpenAITestServer

GIGAWATTS = "It needs 1.21 gigawatts [{n}]."


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply=citing("gigawatts", GIGAWATTS), chunk_size=6) as srv:
        yield srv


@pytest.fixture
async def chat_engine(settings: Settings, server: OpenAITestServer) -> AsyncIterator[Engine]:
    """An engine whose chat provider is the test server (prices set, no retries)."""
    settings.providers = {"test": ProviderSettings(**server.provider_config(
        timeout=2.0, max_retries=0,
        models={"test-model": {"context_window": 8192, "input_price": 3.0,
                               "output_price": 15.0}}))}
    settings.chat.provider = "test"
    settings.chat.model = "test-model"
    await migrate(settings)
    async with Engine(settings) as opened:
        yield opened


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_corpus(tmp_path / "docs")


async def ingest(engine: Engine, corpus: Path, collection: str | None = None) -> None:
    result = await engine.library.run_ingest([corpus], collection=collection)
    assert result.failed == 0 and result.indexed == 3


async def collect(events: AsyncIterator[ChatEvent]) -> list[ChatEvent]:
    out: list[ChatEvent] = []
    async for event in events:
        out.append(event)
    return out


def answer_of(events: list[ChatEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta))


def one(events: list[ChatEvent], kind: type[Any]) -> Any:
    found = [e for e in events if isinstance(e, kind)]
    assert len(found) == 1, events
    return found[0]


async def rows(engine: Engine, model: Any) -> list[Any]:
    assert engine.db is not None
    async with engine.db.read() as s:
        return list(await s.scalars(select(model).order_by(model.id)))


async def test_grounded_answer_cites_the_right_page_and_records_reported_usage(
        chat_engine: Engine, server: OpenAITestServer, corpus: Path) -> None:
    await ingest(chat_engine, corpus)
    server.usage = (321, 12)
    events = await collect(chat_engine.chat.ask("How much power does the flux capacitor need?"))
    marker = int(answer_of(events).split("[")[1].split("]")[0])
    assert marker >= 1

    sources = one(events, Sources)
    assert [c.marker for c in sources.citations] == [marker]
    cited = sources.citations[0]
    assert cited.path.endswith("flux-manual.pdf")
    assert (cited.page, cited.line_start, cited.line_end) == (2, 1, 3)
    assert "1.21 gigawatts" in cited.snippet
    chunk = next(c for c in await rows(chat_engine, m.Chunk) if c.id == cited.chunk_id)
    doc = next(d for d in await rows(chat_engine, m.Document) if d.id == cited.document_id)
    assert "gigawatts" in chunk.text and chunk.chunk_set_id == doc.chunk_set_id

    done = one(events, Done)
    assert done.status == "complete" and done.model == "test-model"
    assert (done.usage.prompt_tokens, done.usage.completion_tokens) == (321, 12)
    assert done.usage.estimated is False
    assert done.usage.cost == pytest.approx((321 * 3.0 + 12 * 15.0) / 1e6)
    assert done.usage.embedding_tokens > 0  # the question was embedded for vector search

    chat_row = [u for u in await rows(chat_engine, m.TokenUsage) if u.kind == "chat"]
    assert [(u.prompt_tokens, u.completion_tokens, u.estimated) for u in chat_row] == \
        [(321, 12, False)]
    assert chat_row[0].message_id == done.message_id and chat_row[0].provider == "test"
    assert chat_row[0].first_token_ms is not None and chat_row[0].latency_ms is not None

    stored = await rows(chat_engine, m.Citation)
    assert [(c.marker, c.message_id, c.page, c.position) for c in stored] == \
        [(marker, done.message_id, 2, 0)]
    prompt = server.chat_requests[-1].json["messages"][-1]["content"]
    assert f"[{marker}] {cited.path} p.2 L1-3" in prompt


async def test_markdown_citation_spans_the_fact_line(chat_engine: Engine,
                                                     server: OpenAITestServer,
                                                     corpus: Path) -> None:
    await ingest(chat_engine, corpus)
    server.reply = citing("Fernet", "Fernet tokens [{n}].")
    events = await collect(chat_engine.chat.ask("How is chat history encrypted?"))
    (cited,) = one(events, Sources).citations
    assert cited.path.endswith("storage.md") and cited.page is None
    assert cited.line_start <= MARKDOWN_FACT_LINE <= cited.line_end


async def test_only_cited_sources_are_kept_and_unknown_markers_flagged(
        chat_engine: Engine, server: OpenAITestServer, corpus: Path) -> None:
    await ingest(chat_engine, corpus)
    server.reply = citing("gigawatts", "Power [{n}]. Made up [42].")
    events = await collect(chat_engine.chat.ask("What does the flux capacitor need?"))
    sources = one(events, Sources)
    assert len(server.chat_requests) == 1
    offered = sources_of(server.chat_requests[0].json)
    assert len(offered) > 1  # several sources were in the prompt ...
    assert len(sources.citations) == 1  # ... one was cited
    assert sources.unknown_markers == (42,)
    assert [c.marker for c in await rows(chat_engine, m.Citation)] == \
        [sources.citations[0].marker]


async def test_hangup_keeps_the_question_and_the_partial_answer(
        chat_engine: Engine, server: OpenAITestServer, corpus: Path) -> None:
    server.reply = "The first part arrives, and then the line goes dead."
    server.hangup_after = 3
    events: list[ChatEvent] = []
    with pytest.raises(StreamInterrupted):
        async for event in chat_engine.chat.ask("Tell me a long story"):
            events.append(event)
    done = one(events, Done)
    assert done.status == "interrupted" and "stopped" in (done.error or "")
    partial = answer_of(events)
    assert partial and server.reply.startswith(partial) and partial != server.reply
    detail = await chat_engine.sessions.get(done.session_id)
    assert [(msg.role, msg.status) for msg in detail.messages] == \
        [("user", "complete"), ("assistant", "interrupted")]
    assert detail.messages[0].content == "Tell me a long story"
    assert detail.messages[1].content == partial
    (usage,) = await rows(chat_engine, m.TokenUsage)
    assert usage.estimated and usage.completion_tokens > 0


async def test_a_server_that_never_answers_is_an_error_and_keeps_the_question(
        chat_engine: Engine, server: OpenAITestServer) -> None:
    server.never_answer = True
    events: list[ChatEvent] = []
    with pytest.raises(ProviderUnreachable) as caught:
        async for event in chat_engine.chat.ask("Anyone there?"):
            events.append(event)
    assert "did not answer" in caught.value.message and caught.value.hint
    done = one(events, Done)
    assert done.status == "error"
    detail = await chat_engine.sessions.get(done.session_id)
    assert [(msg.role, msg.content, msg.status) for msg in detail.messages] == \
        [("user", "Anyone there?", "complete"), ("assistant", "", "error")]
    (usage,) = await rows(chat_engine, m.TokenUsage)
    assert (usage.prompt_tokens, usage.completion_tokens, usage.cost) == (0, 0, 0.0)


async def test_a_refused_key_is_a_clear_error(chat_engine: Engine,
                                              server: OpenAITestServer) -> None:
    server.api_key = "sk-right"
    with pytest.raises(ProviderAuthError) as caught:
        await collect(chat_engine.chat.ask("Hello?"))
    assert "401" in caught.value.message
    assert "api_key" in (caught.value.hint or "")
    messages = await rows(chat_engine, m.Message)
    assert [(msg.role, msg.status) for msg in messages] == [("user", "complete"),
                                                            ("assistant", "error")]


async def test_an_unknown_model_names_the_ones_the_server_has(
        chat_engine: Engine, server: OpenAITestServer) -> None:
    with pytest.raises(UnknownModel) as caught:
        await collect(chat_engine.chat.ask("Hello?", model="no-such-model"))
    assert "test-model" in (caught.value.hint or "")
    assert (await rows(chat_engine, m.Message))[0].content == "Hello?"


async def test_extractive_answer_cites_the_right_sources_without_a_server(
        engine: Engine, corpus: Path) -> None:
    await ingest(engine, corpus)
    events = await collect(engine.chat.ask("How much power does the flux capacitor need?"))
    answer = answer_of(events)
    assert answer.startswith("Extractive answer")
    assert "1.21 gigawatts" in answer
    sources = one(events, Sources)
    assert sources.unknown_markers == ()
    line = next(x for x in answer.splitlines() if "gigawatts" in x)
    marker = int(line.rsplit("[", 1)[1].rstrip("]"))
    cited = {c.marker: c for c in sources.citations}[marker]
    assert cited.path.endswith("flux-manual.pdf") and cited.page == 2
    done = one(events, Done)
    assert done.status == "complete" and done.model == "extractive"
    assert done.usage.estimated and done.usage.cost == 0.0
    (stored,) = [msg for msg in await rows(engine, m.Message) if msg.role == "assistant"]
    assert stored.provider == "extractive"


async def test_extractive_with_no_documents_says_so(engine: Engine) -> None:
    events = await collect(engine.chat.ask("What is in my notes?"))
    assert "found nothing relevant" in answer_of(events)
    assert one(events, Sources).citations == ()


async def test_a_cancelled_turn_keeps_what_arrived(chat_engine: Engine,
                                                   server: OpenAITestServer) -> None:
    server.reply = "word " * 200
    server.chunk_delay = 0.05
    received: list[str] = []

    async def consume() -> None:
        async for event in chat_engine.chat.ask("Stream slowly"):
            if isinstance(event, Delta):
                received.append(event.text)

    async def three_pieces() -> None:
        while len(received) < 3:
            await asyncio.sleep(0.01)

    task = asyncio.create_task(consume())
    await asyncio.wait_for(three_pieces(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    messages = await rows(chat_engine, m.Message)
    assert [(msg.role, msg.status) for msg in messages] == [("user", "complete"),
                                                            ("assistant", "interrupted")]
    assert messages[1].content.startswith("".join(received)[:10])
    assert messages[1].content == "".join(received)
    server.wait_for(lambda: server.chat_requests[-1].disconnected)


async def test_a_consumer_that_stops_early_keeps_the_partial_answer(
        chat_engine: Engine, server: OpenAITestServer) -> None:
    server.reply = "one two three four five six seven eight nine ten"
    stream = chat_engine.chat.ask("Count")
    async with contextlib.aclosing(stream):
        async for event in stream:
            if isinstance(event, Delta):
                break
    (question, answer) = await rows(chat_engine, m.Message)
    assert answer.status == "interrupted" and answer.parent_id == question.id
    assert server.reply.startswith(answer.content) and answer.content


async def test_follow_up_continues_the_latest_session_with_its_history(
        chat_engine: Engine, server: OpenAITestServer) -> None:
    server.reply = "First answer."
    first = one(await collect(chat_engine.chat.ask("First question?", new=True)), Done)
    server.reply = "Second answer."
    second = one(await collect(chat_engine.chat.ask("And then?")), Done)
    assert second.session_id == first.session_id
    sent = server.chat_requests[-1].json["messages"]
    assert [(x["role"], x["content"]) for x in sent[1:]] == [
        ("user", "First question?"), ("assistant", "First answer."), ("user", "And then?")]
    third = one(await collect(chat_engine.chat.ask("Fresh start", new=True)), Done)
    assert third.session_id != first.session_id
    assert len(server.chat_requests[-1].json["messages"]) == 2


async def test_regenerate_and_edit_make_branches_and_keep_the_old_ones(
        chat_engine: Engine, server: OpenAITestServer) -> None:
    chat = chat_engine.chat
    server.reply = "Answer A."
    first = one(await collect(chat.ask("Question one?", new=True)), Done)
    sid = first.session_id
    server.reply = "Answer B."
    regen = one(await collect(chat.regenerate(sid)), Done)
    detail = await chat_engine.sessions.get(sid)
    assert [msg.content for msg in detail.messages] == ["Question one?", "Answer B."]
    alternatives = await chat.branches.siblings(sid, regen.message_id)
    assert [msg.content for msg in alternatives] == ["Answer A.", "Answer B."]
    assert len(server.chat_requests[-1].json["messages"]) == 2  # no old answer in the prompt

    server.reply = "Answer C."
    one(await collect(chat.edit_last(sid, "Question one, edited?")), Done)
    detail = await chat_engine.sessions.get(sid)
    assert [msg.content for msg in detail.messages] == ["Question one, edited?", "Answer C."]
    assert detail.messages[0].parent_id is None  # a new root: the first question was edited
    versions = await chat.branches.siblings(sid, detail.messages[0].id)
    assert [msg.content for msg in versions] == ["Question one?", "Question one, edited?"]

    back = await chat.branches.switch(sid, first.message_id)
    assert back.content == "Answer A."
    detail = await chat_engine.sessions.get(sid)
    assert [msg.content for msg in detail.messages] == ["Question one?", "Answer A."]
    assert len(await rows(chat_engine, m.Message)) == 5  # nothing was deleted


async def test_regenerate_answers_a_question_left_without_an_answer(
        chat_engine: Engine, server: OpenAITestServer) -> None:
    server.api_key = "sk-right"
    with pytest.raises(ProviderAuthError):
        await collect(chat_engine.chat.ask("Lost?", new=True))
    server.api_key = None
    server.reply = "Found."
    session_id = (await chat_engine.sessions.list())[0].id
    done = one(await collect(chat_engine.chat.regenerate(session_id)), Done)
    detail = await chat_engine.sessions.get(done.session_id)
    assert [msg.content for msg in detail.messages] == ["Lost?", "Found."]


async def test_title_comes_from_the_first_question_and_is_encrypted(
        chat_engine: Engine, server: OpenAITestServer) -> None:
    question = "What is the secret recipe of the famous orange cake that grandma baked?"
    done = one(await collect(chat_engine.chat.ask(question, new=True)), Done)
    summary = (await chat_engine.sessions.get(done.session_id)).session
    assert summary.title.startswith("What is the secret recipe") and summary.title.endswith("…")
    assert len(summary.title) <= 61
    assert chat_engine.db is not None
    async with chat_engine.db.read() as s:
        raw = (await s.execute(text("SELECT title FROM sessions"))).scalar_one()
        content = (await s.execute(text("SELECT content FROM messages LIMIT 1"))).scalar_one()
    assert "recipe" not in raw and "recipe" not in content


async def test_budget_refusal_keeps_the_question_and_calls_nothing(
        chat_engine: Engine, server: OpenAITestServer) -> None:
    chat_engine.settings.chat.budget.daily = 0.0000001
    chat_engine.settings.chat.budget.action = "refuse"
    with pytest.raises(BudgetExceeded):
        await collect(chat_engine.chat.ask("Expensive question?"))
    assert server.chat_requests == []
    assert [msg.content for msg in await rows(chat_engine, m.Message)] == ["Expensive question?"]


async def test_budget_warning_comes_before_the_answer(chat_engine: Engine,
                                                      server: OpenAITestServer) -> None:
    chat_engine.settings.chat.budget.monthly = 0.0000001
    events = await collect(chat_engine.chat.ask("Pricey?"))
    assert isinstance(events[0], Searched)  # what the chat searches comes first
    assert isinstance(events[1], BudgetWarning) and events[1].period == "month"
    assert one(events, Done).status == "complete"


async def test_no_rag_and_session_collections_decide_what_is_searched(
        chat_engine: Engine, server: OpenAITestServer, corpus: Path, tmp_path: Path) -> None:
    await ingest(chat_engine, corpus)
    other = tmp_path / "other"
    other.mkdir()
    (other / "tea.md").write_text("# Tea\n\nGreen tea steeps for two minutes at 80 degrees.\n")
    assert (await chat_engine.library.run_ingest([other], collection="tea")).indexed == 1

    await collect(chat_engine.chat.ask("flux capacitor power?", new=True, rag=False))
    assert sources_of(server.chat_requests[-1].json) == {}

    done = one(await collect(chat_engine.chat.ask("flux capacitor power?", new=True)), Done)
    assert any("gigawatts" in t for t in sources_of(server.chat_requests[-1].json).values())

    await chat_engine.chat.set_collections(done.session_id, ["tea"])
    await collect(chat_engine.chat.ask("flux capacitor power?", session_id=done.session_id))
    offered = sources_of(server.chat_requests[-1].json).values()
    assert offered and all("gigawatts" not in t for t in offered)

    with pytest.raises(NotFound):
        await collect(chat_engine.chat.ask("x", collections=["missing"]))


async def test_session_model_and_system_prompt_are_used(chat_engine: Engine,
                                                        server: OpenAITestServer) -> None:
    server.models = ["test-model", "other-model"]
    done = one(await collect(chat_engine.chat.ask("Hi", new=True)), Done)
    summary = await chat_engine.chat.set_model(done.session_id, "other-model")
    assert summary.model == "other-model"
    await chat_engine.chat.set_system_prompt(done.session_id, "Answer like a pirate.")
    again = one(await collect(chat_engine.chat.ask("Hi again", session_id=done.session_id)),
                Done)
    request = server.chat_requests[-1].json
    assert request["model"] == "other-model" and again.model == "other-model"
    assert request["messages"][0] == {"role": "system", "content": "Answer like a pirate."}


async def test_bad_input_is_refused_and_a_too_long_question_is_kept(
        chat_engine: Engine, server: OpenAITestServer) -> None:
    with pytest.raises(UsageError):
        await collect(chat_engine.chat.ask("   "))
    assert await rows(chat_engine, m.Message) == []
    chat_engine.settings.providers["test"].models["test-model"].context_window = 512
    with pytest.raises(ContextTooLong):
        await collect(chat_engine.chat.ask("word " * 2000))
    assert server.chat_requests == []
    assert len(await rows(chat_engine, m.Message)) == 1  # the question is stored


async def test_a_document_removed_during_the_stream_does_not_lose_the_answer(
        chat_engine: Engine, server: OpenAITestServer, corpus: Path) -> None:
    await ingest(chat_engine, corpus)
    server.reply = citing("gigawatts", "It needs 1.21 gigawatts, as the manual says [{n}].")
    server.chunk_delay = 0.02
    events: list[ChatEvent] = []
    async for event in chat_engine.chat.ask("flux capacitor power?"):
        if isinstance(event, Delta) and not any(isinstance(e, Delta) for e in events):
            await chat_engine.library.remove_documents(corpus / "flux-manual.pdf")
        events.append(event)
    (cited,) = one(events, Sources).citations
    assert cited.path.endswith("flux-manual.pdf") and cited.page == 2
    assert (cited.chunk_id, cited.document_id) == (None, None)  # the links went with it
    (stored,) = await rows(chat_engine, m.Citation)
    assert (stored.path, stored.page, stored.chunk_id) == (cited.path, 2, None)
    assert "gigawatts" in stored.snippet


async def test_regenerate_needs_a_question_and_switch_a_real_message(
        chat_engine: Engine, server: OpenAITestServer) -> None:
    empty = await chat_engine.sessions.create("Empty")
    with pytest.raises(UsageError):
        await collect(chat_engine.chat.regenerate(empty.id))
    with pytest.raises(NotFound):
        await chat_engine.chat.branches.switch(empty.id, 999)
    with pytest.raises(NotFound):
        await collect(chat_engine.chat.regenerate(12345))
    assert server.chat_requests == []
