"""The chat you set up, in the app (Pilot): the header says what a chat searches, the
settings dialog changes model, prompt, collections and parameters (and refuses a model the
server does not have), Ctrl+N offers personas, files and long pastes become attachment
chips that go with the next question."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.widgets import Button, Checkbox, Input, OptionList, SelectionList, Static, TextArea

from engine import Engine, Settings, load_settings
from tests.conftest import migrate
from tests.engine.chat_support import sources_of
from tests.support.openai_server import OpenAITestServer
from tests.tui.conftest import ask, overrides_for, settle, wait_until
from tui.app import ParleyApp
from tui.screens.chat import ChatScreen
from tui.screens.chat_pickers import AttachDialog, PersonaPicker
from tui.screens.session_settings import SessionSettingsDialog
from tui.widgets.prompt import PromptInput
from tui.widgets.transcript import Transcript

SIZE = (120, 36)


async def two_collections(settings: Settings, tmp_path: Path) -> None:
    work, papers = tmp_path / "work", tmp_path / "papers"
    work.mkdir()
    papers.mkdir()
    (work / "tea.md").write_text("# Tea\n\nGreen tea steeps for two minutes.\n")
    (papers / "trains.md").write_text("# Trains\n\nThe night train leaves at ten.\n")
    async with Engine(settings) as engine:
        await engine.library.run_ingest([work], collection="work")
        await engine.library.run_ingest([papers], collection="papers")


def header(app: ParleyApp) -> str:
    return str(app.screen.query_one("#chat-header", Static).render())


async def test_the_header_says_what_a_new_chat_searches(tui_settings: Settings,
                                                        tmp_path: Path) -> None:
    app = ParleyApp(tui_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert "nothing indexed yet" in header(app) and "parley ingest" in header(app)
    await two_collections(tui_settings, tmp_path)
    app = ParleyApp(tui_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        assert header(app).startswith("searching: all (2)")
        assert "test-model · ctx 8,192" in header(app)


async def test_the_settings_dialog_changes_the_next_question(
        tui_settings: Settings, chat_server: OpenAITestServer, tmp_path: Path) -> None:
    await two_collections(tui_settings, tmp_path)
    chat_server.models = ["test-model", "big-model", "test-embedding"]
    chat_server.style, chat_server.context_window = "llamacpp", 16384
    app = ParleyApp(tui_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await ask(pilot, "How long does tea steep?")
        screen = app.screen
        assert isinstance(screen, ChatScreen) and screen.session_id is not None
        await pilot.press("ctrl+g")
        await settle(pilot)
        dialog = app.screen
        assert isinstance(dialog, SessionSettingsDialog)
        picker = dialog.query_one("#settings-models", OptionList)
        assert [picker.get_option_at_index(i).id for i in range(picker.option_count)] == [
            "test-model", "big-model", "test-embedding"]
        assert "16,384 tokens" in str(dialog.query_one("#settings-window", Static).render())

        dialog.query_one("#settings-model", Input).value = "no-such-model"
        await pilot.click("#save")
        await settle(pilot)
        assert app.screen is dialog  # refused: the dialog stays, saying why
        error = str(dialog.query_one("#settings-error", Static).render())
        assert "model 'no-such-model' is not on provider 'test'" in error

        picker.highlighted = 1
        picker.action_select()
        dialog.query_one("#settings-system", TextArea).load_text("Answer in one line.")
        dialog.query_one("#settings-collections", SelectionList).select("papers")
        dialog.query_one("#settings-temperature", Input).value = "0.4"
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen)
        assert header(app).startswith("searching: papers  │  big-model")
        assert "custom prompt" in header(app) and "temp 0.4" in header(app)
        assert app.status.context_window == 16384
        await ask(pilot, "And trains?")
        request = chat_server.chat_requests[-1].json
        assert request["model"] == "big-model" and request["temperature"] == 0.4
        assert request["messages"][0]["content"] == "Answer in one line."
        assert all("tea" not in text.lower() for text in sources_of(request).values())

        await pilot.press("ctrl+g")
        await settle(pilot)
        app.screen.query_one("#settings-rag", Checkbox).value = False
        await pilot.press("ctrl+s")
        await settle(pilot)
        assert header(app).startswith("not searching documents (RAG off)")


async def test_ctrl_n_offers_personas(database_url: str, parley_home: Path,
                                      chat_server: OpenAITestServer, tmp_path: Path) -> None:
    settings = load_settings(overrides=overrides_for(database_url, chat_server, personas={
        "tea": {"description": "Tea questions", "collections": ["work"],
                "first_message": "What tea do I have?", "params": {"top_k": 3}}}))
    await migrate(settings)
    await two_collections(settings, tmp_path)
    app = ParleyApp(settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await settle(pilot)
        picker = app.screen
        assert isinstance(picker, PersonaPicker)
        options = picker.query_one(OptionList)
        assert options.option_count == 2  # a blank chat, then the persona
        options.highlighted = 1
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen) and screen.session_id is not None
        assert screen.query_one(PromptInput).text == "What tea do I have?"
        assert header(app).startswith("searching: work") and "top-k 3" in header(app)
        await pilot.press("enter")
        await settle(pilot)
        assert len(sources_of(chat_server.chat_requests[-1].json)) == 1  # work: one chunk

        await pilot.press("ctrl+n")
        await settle(pilot)
        assert isinstance(app.screen, PersonaPicker)
        await pilot.press("escape")  # Esc keeps the blank chat
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen) and app.screen.session_id is None


async def test_attachment_chips(tui_settings: Settings, chat_server: OpenAITestServer,
                                tmp_path: Path) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Groceries.\n\nOolong tea is rolled by hand.\n")
    binary = tmp_path / "photo.bin"
    binary.write_bytes(bytes(range(256)) * 8)
    app = ParleyApp(tui_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        prompt = screen.query_one(PromptInput)
        prompt.load_text("How is oolong made?")

        await pilot.press("f8")
        await settle(pilot)
        assert isinstance(app.screen, AttachDialog)
        app.screen.query_one(Input).value = str(binary)
        await pilot.press("enter")
        await settle(pilot)
        assert screen.attachments == [] and prompt.text == "How is oolong made?"
        assert any("it is binary" in n.message for n in app._notifications)

        await pilot.press("f8")
        await settle(pilot)
        field = app.screen.query_one(Input)
        field.value = str(tmp_path / "no")
        await wait_until(pilot, lambda: field._suggestion == str(notes))  # path completion
        await pilot.press("right", "enter")
        await settle(pilot)
        chips = screen.query(".chip")
        assert [str(c.label) for c in chips] == ["📎 notes.txt · 3 lines  ✕"]

        prompt.post_message(PromptInput.LongPaste(prompt, "line\n" * 100))
        await settle(pilot)
        assert len(screen.query(".chip")) == 2
        screen.query(".chip").last().press()
        await settle(pilot)
        assert len(screen.attachments) == 1

        prompt.focus()
        await pilot.press("enter")
        await settle(pilot)
        request = chat_server.chat_requests[-1].json
        assert "Oolong tea is rolled by hand." in sources_of(request)[1]
        assert screen.attachments == [] and not screen.query(".chip")
        question = screen.query_one(Transcript).last_view("user")
        assert question is not None and "📎 notes.txt" in str(question.border_title)


async def test_a_too_large_attachment_keeps_the_question_and_the_chip(
        tui_settings: Settings, chat_server: OpenAITestServer) -> None:
    chat_server.style, chat_server.context_window = "llamacpp", 1024
    app = ParleyApp(tui_settings)
    async with app.run_test(size=SIZE) as pilot:
        await settle(pilot)
        screen: Any = app.screen
        prompt = screen.query_one(PromptInput)
        prompt.post_message(PromptInput.LongPaste(prompt, "tea leaves " * 3000))
        await settle(pilot)
        await ask(pilot, "Summarise this")
        assert prompt.text == "Summarise this" and len(screen.attachments) == 1
        assert any("ingest it instead" in n.message for n in app._notifications)
        assert chat_server.chat_requests == []
        assert isinstance(screen.query(".chip").first(), Button)
