"""The chat screen, driven with Pilot: asking, streaming, sources, stopping, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from textual.pilot import Pilot

from engine import Engine, Settings, load_settings
from tests.support.openai_server import OpenAITestServer
from tests.tui.conftest import (
    REPLY,
    RecordingOpener,
    ask,
    ingest,
    overrides_for,
    settle,
    type_text,
    wait_until,
)
from tui.app import ParleyApp
from tui.screens.chat import ChatScreen
from tui.widgets.prompt import PromptInput
from tui.widgets.sources import SourcesPanel
from tui.widgets.transcript import Transcript

QUESTION = "What is the capital of France?"


async def streaming_started(pilot: Pilot[None], transcript: Transcript) -> None:
    """Wait until some of the answer has arrived (a slow reply is still streaming)."""
    def started() -> bool:
        answer = transcript.last_view("assistant")
        return answer is not None and len(answer.content) > 20

    await wait_until(pilot, started)


def chat_parts(app: ParleyApp) -> tuple[ChatScreen, Transcript, PromptInput]:
    screen = app.screen
    assert isinstance(screen, ChatScreen)
    return screen, screen.query_one(Transcript), screen.query_one(PromptInput)


async def test_the_ui_paints_and_takes_input_before_the_database_opens(
        tui_settings: Settings, held_engine_open: asyncio.Event) -> None:
    gate = held_engine_open
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        screen, transcript, prompt = chat_parts(app)
        assert app.focused is prompt
        assert app.engine is None and app.status.state == "opening"
        await type_text(pilot, "hi")
        assert prompt.text == "hi"
        gate.set()
        await settle(pilot)
        assert app.engine is not None and app.status.state == "ready"
        assert app.status.backend in ("sqlite", "postgresql")
        assert app.status.model == "test-model" and app.status.provider == "test"


async def test_an_answer_streams_with_its_citation_and_sources(
        tui_settings: Settings, docs: Path) -> None:
    await ingest(tui_settings, docs)
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen, transcript, prompt = chat_parts(app)
        await ask(pilot, QUESTION)
        user, answer = transcript.views
        assert (user.role, user.content) == ("user", QUESTION)
        assert answer.content == REPLY and answer.answer.status == "complete"
        assert [c.marker for c in answer.answer.citations] == [1]
        assert "(cite:1)" in answer.body.source  # the marker is a link to its source
        panel = screen.query_one(SourcesPanel)
        assert panel.display and panel.citations[0].path.endswith("paris.md")
        assert panel.citations[0].line_start is not None
        assert prompt.text == ""
        assert app.status.context_used > 0
        assert screen.sidebar.session_list.option_count == 1
    async with Engine(tui_settings) as engine:
        [summary] = await engine.sessions.list()
        detail = await engine.sessions.get(summary.id)
        assert [m.role for m in detail.messages] == ["user", "assistant"]
        assert detail.messages[1].citations[0].marker == 1


async def test_escape_stops_the_answer_and_keeps_what_arrived(
        tui_settings: Settings, chat_server: OpenAITestServer) -> None:
    chat_server.reply = "word " * 400
    chat_server.chunk_delay = 0.02
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen, transcript, prompt = chat_parts(app)
        await ask(pilot, QUESTION, wait=False)
        await streaming_started(pilot, transcript)
        assert screen.streaming
        await pilot.press("escape")
        await settle(pilot)
        answer = transcript.last_view("assistant")
        assert answer is not None and answer.answer.status == "interrupted"
        assert 0 < len(answer.content) < len(chat_server.reply)
        assert not screen.streaming
        assert screen.session_id is not None  # the stopped chat is the current session
        chat_server.chunk_delay = 0
        await ask(pilot, "Go on")  # continues that session
    async with Engine(tui_settings) as engine:
        [summary] = await engine.sessions.list()
        messages = (await engine.sessions.get(summary.id)).messages
        assert [m.status for m in messages] == ["complete", "interrupted", "complete",
                                                "complete"]
        stored = messages[1]
        assert stored.content and chat_server.reply.startswith(stored.content.rstrip())


async def test_a_provider_error_is_a_notification_and_the_question_comes_back(
        tui_settings: Settings, chat_server: OpenAITestServer) -> None:
    chat_server.fail_next = 5
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen, transcript, prompt = chat_parts(app)
        await ask(pilot, QUESTION)
        assert prompt.text == QUESTION
        errors = [n for n in app._notifications if n.severity == "error"]
        assert errors and "500" in errors[-1].message
        answer = transcript.last_view("assistant")
        assert answer is not None and answer.answer.status == "error"
        assert app.screen is screen  # no dialog: an expected error is a notification
        chat_server.fail_next = 0
        await pilot.press("enter")  # the same question, sent again
        await settle(pilot)
        assert transcript.last_view("assistant").content == REPLY  # type: ignore[union-attr]


async def test_a_database_that_cannot_open_leaves_the_app_running(
        parley_home: Path, chat_server: OpenAITestServer) -> None:
    broken = parley_home / "not-a-database.db"
    broken.write_bytes(b"this is not SQLite" * 100)
    settings = load_settings(overrides=overrides_for(f"sqlite:///{broken}", chat_server))
    app = ParleyApp(settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert app.status.state == "error"
        assert any("not an SQLite database" in n.message for n in app._notifications)
        screen, transcript, prompt = chat_parts(app)
        await ask(pilot, QUESTION)
        assert prompt.text == QUESTION
        assert any("database is not open" in n.message for n in app._notifications)


async def test_regenerate_and_edit_the_last_question(
        tui_settings: Settings, chat_server: OpenAITestServer) -> None:
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen, transcript, prompt = chat_parts(app)
        await ask(pilot, QUESTION)
        chat_server.reply = "A second answer."
        await pilot.press("ctrl+r")
        await settle(pilot)
        assert [v.content for v in transcript.views] == [QUESTION, "A second answer."]
        await pilot.press("ctrl+l")
        assert prompt.text == QUESTION and screen.editing
        prompt.clear()
        chat_server.reply = "Berlin."
        await ask(pilot, "And of Germany?")
        assert [v.content for v in transcript.views] == ["And of Germany?", "Berlin."]
        assert not screen.editing
    async with Engine(tui_settings) as engine:
        [summary] = await engine.sessions.list()
        branch = (await engine.sessions.get(summary.id)).messages
        everything = (await engine.sessions.get(summary.id, all_branches=True)).messages
        assert [m.content for m in branch] == ["And of Germany?", "Berlin."]
        assert len(everything) == 5  # the old question and both old answers are kept


async def test_left_and_right_switch_between_versions_of_an_answer_and_a_question(
        tui_settings: Settings, chat_server: OpenAITestServer) -> None:
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen, transcript, prompt = chat_parts(app)
        chat_server.reply = "One."
        await ask(pilot, QUESTION)
        chat_server.reply = "Two."
        await pilot.press("ctrl+r")
        await settle(pilot)
        question, answer = transcript.views
        assert answer.content == "Two." and len(answer.alternatives) == 2
        assert "‹ 2/2 ›" in str(answer.border_title)
        assert question.message_id is not None and question.alternatives == ()

        await pilot.press("ctrl+t", "left")  # cursor on the newest answer, then its other version
        await settle(pilot)
        assert [v.content for v in transcript.views] == [QUESTION, "One."]
        assert transcript.selected_view() is transcript.views[1]
        assert "‹ 1/2 ›" in str(transcript.views[1].border_title)
        await pilot.press("right")
        await settle(pilot)
        assert [v.content for v in transcript.views] == [QUESTION, "Two."]

        await pilot.press("up", "left")  # the question has a single version
        await settle(pilot)
        assert any("no other version" in n.message for n in app._notifications)

        prompt.focus()
        await pilot.press("ctrl+l")
        prompt.clear()
        chat_server.reply = "Paris, edited."
        await ask(pilot, "Capital of France, please?")
        await settle(pilot)
        assert len(transcript.views[0].alternatives) == 2
        await pilot.press("ctrl+t", "up", "left")  # back to the first question's branch,
        await settle(pilot)                          # which continues to its newest answer
        assert [v.content for v in transcript.views] == [QUESTION, "Two."]
    async with Engine(tui_settings) as engine:
        [summary] = await engine.sessions.list()
        branch = (await engine.sessions.get(summary.id)).messages
        assert [m.content for m in branch] == [QUESTION, "Two."]  # the switch was stored


async def test_history_walks_earlier_questions(tui_settings: Settings) -> None:
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen, transcript, prompt = chat_parts(app)
        for question in ("first question", "second question"):
            await ask(pilot, question)
        await type_text(pilot, "draft")
        await pilot.press("up")
        assert prompt.text == "second question"
        await pilot.press("up")
        assert prompt.text == "first question"
        await pilot.press("down")
        assert prompt.text == "second question"
        await pilot.press("down")
        assert prompt.text == "draft"
        await pilot.press("ctrl+j")
        await type_text(pilot, "more")
        assert prompt.text == "draft\nmore"


async def test_copy_a_message_and_its_code_block(
        tui_settings: Settings, chat_server: OpenAITestServer) -> None:
    chat_server.reply = "Use this:\n\n```python\nprint('hi')\n```\n\nand this:\n\n```\nls\n```\n"
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen, transcript, prompt = chat_parts(app)
        await ask(pilot, "How do I print?")
        await pilot.press("ctrl+t")
        assert app.focused is transcript
        await pilot.press("c")
        assert app.clipboard == chat_server.reply
        await pilot.press("b")
        assert app.clipboard == "print('hi')\n"
        await pilot.press("b")
        assert app.clipboard == "ls\n"
        await pilot.press("k", "c")  # the question above
        assert app.clipboard == "How do I print?"


async def test_a_source_opens_in_the_editor_at_its_line(
        tui_settings: Settings, docs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EDITOR", "vim")
    monkeypatch.delenv("VISUAL", raising=False)
    await ingest(tui_settings, docs)
    opener = RecordingOpener()
    app = ParleyApp(tui_settings, opener=opener)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen, transcript, prompt = chat_parts(app)
        await ask(pilot, QUESTION)
        await pilot.press("ctrl+t", "1")  # pick source 1 from the message
        await pilot.press("ctrl+s", "enter")
        citation = screen.query_one(SourcesPanel).citations[0]
        assert [c.argv for c in opener.commands] == [
            ("vim", f"+{citation.line_start}", citation.path)]
        assert opener.commands[0].terminal


async def test_starting_a_new_chat_mid_answer_stops_it_cleanly(
        tui_settings: Settings, chat_server: OpenAITestServer) -> None:
    chat_server.reply = "slowly " * 300
    chat_server.chunk_delay = 0.02
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen, transcript, prompt = chat_parts(app)
        await ask(pilot, QUESTION, wait=False)
        await streaming_started(pilot, transcript)
        await pilot.press("ctrl+n")
        await settle(pilot)
        assert app.screen is screen and not screen.streaming  # no error dialog
        assert not transcript.views and screen.session_id is None
        assert not [n for n in app._notifications if n.severity == "error"]
    async with Engine(tui_settings) as engine:
        [summary] = await engine.sessions.list()
        assert (await engine.sessions.get(summary.id)).messages[-1].status == "interrupted"
