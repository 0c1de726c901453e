"""Chat setup in the engine: what a chat searches, session settings, the model's real
context window, attachments and personas. Real databases (both backends), real HTTP to the
test model server (answers and embeddings)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import text, update

from engine import Engine, Settings, load_settings
from engine.config import ProviderSettings
from engine.db import models as m
from engine.errors import ConfigError, ContextTooLong, NotFound, UnknownModel, UsageError
from engine.session_setup.attachments import AttachmentError, load_attachment, text_attachment
from engine.types import Done, NothingFound, Searched, Sources
from tests.conftest import migrate
from tests.engine.chat_support import citing, sources_of, write_pdf
from tests.engine.test_chat import answer_of, collect, one, rows
from tests.support.openai_server import OpenAITestServer

REPLY = "Green tea steeps for two minutes [{n}]."


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply=citing("tea", REPLY), models=["test-model", "big-model",
                                                                "test-embedding"]) as srv:
        yield srv


@pytest.fixture
async def setup_engine(settings: Settings, server: OpenAITestServer) -> AsyncIterator[Engine]:
    """Chat and embeddings on the test server."""
    settings.providers = {"test": ProviderSettings(**server.provider_config(
        timeout=5.0, max_retries=0))}
    settings.chat.provider = "test"
    settings.chat.model = "test-model"
    settings.embedding.provider = "test"
    settings.embedding.model = "test-embedding"
    await migrate(settings)
    async with Engine(settings) as opened:
        yield opened


async def library(engine: Engine, tmp_path: Path) -> None:
    """Two collections, neither named 'default': work (tea) and papers (trains)."""
    work, papers = tmp_path / "work", tmp_path / "papers"
    work.mkdir()
    papers.mkdir()
    (work / "tea.md").write_text("# Tea\n\nGreen tea steeps for two minutes at 80 degrees.\n")
    (papers / "trains.md").write_text("# Trains\n\nThe night train leaves at ten.\n")
    assert (await engine.library.run_ingest([work], collection="work")).indexed == 1
    assert (await engine.library.run_ingest([papers], collection="papers")).indexed == 1


# -- 1. which documents a chat searches ------------------------------------------------------
async def test_a_new_session_searches_every_collection_and_says_so(
        setup_engine: Engine, server: OpenAITestServer, tmp_path: Path) -> None:
    await library(setup_engine, tmp_path)
    events = await collect(setup_engine.chat.ask("How long does green tea steep?", new=True))
    searched = events[0]
    assert isinstance(searched, Searched) and searched.first
    assert searched.scope.all and set(searched.scope.collections) == {"work", "papers"}
    assert searched.scope.describe() == "searching: all (2)"
    (citation,) = one(events, Sources).citations
    assert citation.path.endswith("tea.md")
    done = one(events, Done)
    again = await collect(setup_engine.chat.ask("And black tea?", session_id=done.session_id))
    assert isinstance(again[0], Searched) and not again[0].first

    await setup_engine.chat.configure(done.session_id, collections=["papers"])
    scoped = await collect(setup_engine.chat.ask("How long does tea steep?",
                                                 session_id=done.session_id))
    assert scoped[0].scope.describe() == "searching: papers"
    offered = sources_of(server.chat_requests[-1].json).values()
    assert all("tea" not in passage.lower() for passage in offered)


async def test_nothing_indexed_and_nothing_found_say_what_was_searched(
        setup_engine: Engine, tmp_path: Path) -> None:
    scope = await setup_engine.chat.scope()
    assert scope.documents == 0 and scope.describe() == "searching: nothing indexed yet"
    setup_engine.settings.chat.provider = None  # the offline answerer words it itself
    events = await collect(setup_engine.chat.ask("What is in my notes?", new=True))
    assert "nothing is indexed yet" in answer_of(events)
    await library(setup_engine, tmp_path)
    await setup_engine.library.create_collection("empty")
    events = await collect(setup_engine.chat.ask("Tea?", new=True, collections=["empty"]))
    found = one(events, NothingFound)
    assert found.scope.collections == ("empty",) and not found.scope.all
    assert "for this question in collection empty (nothing is indexed there yet)" \
        in answer_of(events)


async def test_a_collection_of_another_embedder_is_searched_by_keywords(
        setup_engine: Engine, tmp_path: Path) -> None:
    await library(setup_engine, tmp_path)
    async with setup_engine._require_db().write() as s:
        await s.execute(update(m.Collection).where(m.Collection.name == "papers")
                        .values(embedder="openai:elsewhere/other-model"))
    events = await collect(setup_engine.chat.ask("When does the night train leave?", new=True))
    assert one(events, Searched).scope.keyword_only == ("papers",)
    assert one(events, Done).status == "complete"


# -- 2. session settings -------------------------------------------------------------------
async def test_settings_are_stored_and_used_from_the_next_question(
        setup_engine: Engine, server: OpenAITestServer, tmp_path: Path) -> None:
    await library(setup_engine, tmp_path)
    done = one(await collect(setup_engine.chat.ask("Tea?", new=True)), Done)
    summary, warnings = await setup_engine.chat.configure(
        done.session_id, model="big-model", system_prompt="Answer like a pirate.",
        params={"temperature": "0.3", "max_tokens": "99", "top_k": "1"})
    assert warnings == []
    assert summary.model == "big-model" and summary.params == {
        "temperature": 0.3, "max_tokens": 99, "top_k": 1}
    await collect(setup_engine.chat.ask("Tea again?", session_id=done.session_id))
    request = server.chat_requests[-1].json
    assert request["model"] == "big-model"
    assert (request["temperature"], request["max_tokens"]) == (0.3, 99)
    assert request["messages"][0]["content"] == "Answer like a pirate."
    assert len(sources_of(request)) == 1  # top_k 1
    async with setup_engine._require_db().read() as s:  # the prompt is encrypted at rest
        raw = (await s.execute(text("SELECT system_prompt FROM sessions"))).scalar_one()
    assert "pirate" not in raw

    await setup_engine.chat.configure(done.session_id, rag=False, params={"top_k": ""})
    await collect(setup_engine.chat.ask("Tea once more?", session_id=done.session_id))
    assert sources_of(server.chat_requests[-1].json) == {}
    after = (await setup_engine.sessions.get(done.session_id)).session
    assert after.rag is False and "top_k" not in after.params


async def test_an_unknown_model_or_bad_parameter_changes_nothing(
        setup_engine: Engine) -> None:
    done = one(await collect(setup_engine.chat.ask("Hi", new=True)), Done)
    with pytest.raises(UnknownModel) as caught:
        await setup_engine.chat.configure(done.session_id, model="no-such-model")
    assert "big-model" in (caught.value.hint or "")
    for bad in ({"temperature": "7"}, {"top_k": "many"}, {"colour": "blue"}):
        with pytest.raises(UsageError):
            await setup_engine.chat.configure(done.session_id, model="big-model", params=bad)
    with pytest.raises(NotFound):
        await setup_engine.chat.configure(done.session_id, collections=["missing"])
    session = (await setup_engine.sessions.get(done.session_id)).session
    assert session.model is None and session.params == {} and session.collections == ()


async def test_the_model_list_puts_configured_models_first(setup_engine: Engine) -> None:
    setup_engine.settings.providers["test"].models = {"zeta-model": {"context_window": 4096}}
    models = await setup_engine.chat.models("test")
    assert models[0] == "zeta-model" and "test-model" in models and "big-model" in models


# -- 5. the model's real context window ----------------------------------------------------
@pytest.mark.parametrize("style,source", [("llamacpp", "/props"), ("ollama", "/api/show"),
                                          ("vllm", "/models")])
async def test_the_server_tells_the_context_window(setup_engine: Engine,
                                                   server: OpenAITestServer, style: str,
                                                   source: str) -> None:
    server.style, server.context_window = style, 4096
    window = await setup_engine.chat.context_window("test", "test-model")
    assert window.tokens == 4096 and source in window.source
    asked = len(server.requests)
    assert (await setup_engine.chat.context_window("test", "test-model")).tokens == 4096
    assert len(server.requests) == asked  # cached


async def test_a_question_too_long_for_the_servers_window_is_refused_before_the_call(
        setup_engine: Engine, server: OpenAITestServer) -> None:
    server.style, server.context_window = "llamacpp", 4096
    with pytest.raises(ContextTooLong) as caught:
        await collect(setup_engine.chat.ask("word " * 5000, new=True))
    assert "4096" in caught.value.message
    assert server.chat_requests == []


async def test_without_a_server_figure_the_config_and_then_the_default_count(
        setup_engine: Engine, server: OpenAITestServer) -> None:
    assert (await setup_engine.chat.context_window("test", "test-model")).source == "default"
    setup_engine.settings.providers["test"].models = {"big-model": {"context_window": 2048}}
    window = await setup_engine.chat.context_window("test", "big-model")
    assert (window.tokens, window.source) == (2048, "config")
    server.style, server.context_window = "vllm", 32768  # a smaller configured limit wins
    window = await setup_engine.chat.context_window("test", "big-model", refresh=True)
    assert window.tokens == 2048 and "32,768" in window.source


# -- 4. attachments --------------------------------------------------------------------------
async def test_an_attachment_is_a_cited_source_stored_encrypted(
        setup_engine: Engine, server: OpenAITestServer, tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Shopping list.\n\nOolong tea is rolled by hand.\n", encoding="utf-8")
    attached = load_attachment(notes, max_bytes=10_000)
    events = await collect(setup_engine.chat.ask("How is oolong tea made?", new=True,
                                                 rag=False, attachments=[attached]))
    (citation,) = one(events, Sources).citations
    assert citation.path == str(notes) and citation.document_id is None
    assert (citation.line_start, citation.line_end) == (1, 3)
    assert 1 in sources_of(server.chat_requests[-1].json)
    done = one(events, Done)
    detail = await setup_engine.sessions.get(done.session_id)
    assert [a.path for a in detail.messages[0].attachments] == [str(notes)]
    async with setup_engine._require_db().read() as s:
        raw = (await s.execute(text("SELECT text FROM attachments"))).scalar_one()
    assert "Oolong" not in raw

    regenerated = await collect(setup_engine.chat.regenerate(done.session_id))
    assert one(regenerated, Sources).citations[0].path == str(notes)


async def test_pdf_pages_of_an_attachment_are_cited(setup_engine: Engine,
                                                    server: OpenAITestServer,
                                                    tmp_path: Path) -> None:
    pdf = write_pdf(tmp_path / "menu.pdf", ["Starters.\nSoup of the day.",
                                            "Drinks.\nJasmine tea is served hot."])
    events = await collect(setup_engine.chat.ask(
        "Which tea?", new=True, rag=False,
        attachments=[load_attachment(pdf, max_bytes=100_000)]))
    (citation,) = one(events, Sources).citations
    assert citation.page == 2 and citation.path == str(pdf)


async def test_bad_or_too_large_attachments_are_refused_and_nothing_is_stored(
        setup_engine: Engine, server: OpenAITestServer, tmp_path: Path) -> None:
    binary = tmp_path / "blob.bin"
    binary.write_bytes(bytes(range(256)) * 20)
    for target in (binary, tmp_path / "missing.txt", tmp_path):
        with pytest.raises(AttachmentError):
            load_attachment(target, max_bytes=10_000)
    with pytest.raises(AttachmentError):
        text_attachment("   ")
    server.style, server.context_window = "llamacpp", 1024
    huge = text_attachment("tea leaves " * 3000, "pasted text")
    with pytest.raises(ContextTooLong) as caught:
        await collect(setup_engine.chat.ask("Summarise", new=True, attachments=[huge]))
    assert "ingest" in (caught.value.hint or "")
    assert await rows(setup_engine, m.Message) == [] and server.chat_requests == []


# -- 3. personas -----------------------------------------------------------------------------
def test_a_persona_naming_a_missing_provider_is_a_config_error(parley_home: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(overrides={"personas": {"critic": {"provider": "nowhere"}}})
    assert "persona 'critic'" in caught.value.message


async def test_personas_from_config_and_from_a_session(setup_engine: Engine,
                                                       server: OpenAITestServer,
                                                       tmp_path: Path) -> None:
    await library(setup_engine, tmp_path)
    setup_engine.settings.personas = load_settings(overrides={"personas": {"tea": {
        "model": "big-model", "system_prompt": "Tea expert.", "collections": ["work"],
        "params": {"temperature": 0.1}, "first_message": "What tea do I have?"}}}).personas
    events = await collect(setup_engine.chat.ask("", persona="tea"))
    request = server.chat_requests[-1].json
    assert request["model"] == "big-model" and request["temperature"] == 0.1
    assert request["messages"][-1]["content"].endswith(
        "What tea do I have?\n(Cite the sources you use by their numbers in square brackets.)")
    done = one(events, Done)
    session = (await setup_engine.sessions.get(done.session_id)).session
    assert session.collections == ("work",) and session.system_prompt == "Tea expert."

    saved = await setup_engine.personas.save_from_session("tea-copy", done.session_id)
    assert (saved.origin, saved.model, saved.collections) == ("saved", "big-model", ("work",))
    assert [p.name for p in await setup_engine.personas.list()] == ["tea", "tea-copy"]
    with pytest.raises(UsageError):
        await setup_engine.personas.save_from_session("tea-copy", done.session_id)
    with pytest.raises(UsageError):
        await setup_engine.personas.delete("tea")  # lives in the config file
    await setup_engine.personas.delete("tea-copy")
    with pytest.raises(NotFound):
        await setup_engine.personas.get("tea-copy")

    setup_engine.settings.personas["tea"].collections = ["gone"]
    with pytest.raises(NotFound) as caught:
        await collect(setup_engine.chat.ask("Hi", persona="tea"))
    assert "persona 'tea'" in caught.value.message and "'gone'" in caught.value.message




async def test_export_and_import_keep_settings_and_attachments(setup_engine: Engine,
                                                               tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Oolong tea is rolled by hand.\n")
    done = one(await collect(setup_engine.chat.ask(
        "How is oolong made?", new=True, rag=False,
        attachments=[load_attachment(notes, max_bytes=10_000)])), Done)
    await setup_engine.chat.configure(done.session_id, params={"temperature": "0.5"})
    exported = await setup_engine.sessions.export(done.session_id)
    copy = await setup_engine.sessions.import_(exported)
    detail = await setup_engine.sessions.get(copy.session.id)
    assert detail.session.rag is False and detail.session.params == {"temperature": 0.5}
    assert [a.path for a in detail.messages[0].attachments] == [str(notes)]
