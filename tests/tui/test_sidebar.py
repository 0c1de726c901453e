"""The sessions sidebar: paging, filtering, opening, renaming and deleting, and the error
dialog for the unexpected."""

from __future__ import annotations

import pytest

from engine import Engine, Settings
from engine.history.sessions import SessionStore
from tests.tui.conftest import ask, settle, type_text, wait_until
from tui.app import ParleyApp
from tui.screens.chat import ChatScreen
from tui.screens.dialogs import ConfirmDialog, ErrorDialog, TextDialog
from tui.widgets.transcript import Transcript


async def make_sessions(settings: Settings, titles: list[str]) -> list[int]:
    """Sessions with one question and answer each, the last title newest."""
    ids = []
    async with Engine(settings) as engine:
        for title in titles:
            summary = await engine.sessions.create(title)
            await engine.sessions.add_message(summary.id, "user", f"question about {title}")
            await engine.sessions.add_message(summary.id, "assistant", f"answer on {title}")
            ids.append(summary.id)
    return ids


async def test_the_sidebar_loads_sessions_a_page_at_a_time(tui_settings: Settings) -> None:
    async with Engine(tui_settings) as engine:
        for n in range(230):
            await engine.sessions.create(f"session {n:03}")
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        sessions = screen.sidebar.session_list
        assert sessions.option_count == 100
        assert str(sessions.get_option_at_index(0).prompt).startswith("session 229")
        sessions.focus()
        sessions.action_last()  # the end comes near: the next page loads
        await settle(pilot)
        assert sessions.option_count == 200
        sessions.action_last()
        await settle(pilot)
        assert sessions.option_count == 230 and screen.sidebar.exhausted
        titles = [str(o.prompt).split("\n")[0] for o in sessions.options]
        assert titles == [f"session {n:03}" for n in range(229, -1, -1)]


async def test_filter_open_rename_and_delete_a_session(tui_settings: Settings) -> None:
    ids = await make_sessions(tui_settings, ["apples", "bananas", "cherries"])
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        await pilot.press("ctrl+f")
        await type_text(pilot, "banan")
        sessions = screen.sidebar.session_list
        await wait_until(pilot, lambda: sessions.option_count == 1)  # after a typing pause
        await settle(pilot)
        assert [o.id for o in sessions.options] == [str(ids[1])]
        await pilot.press("enter", "enter")  # to the list, then open the session
        await settle(pilot)
        assert screen.session_id == ids[1]
        contents = [v.content for v in screen.query_one(Transcript).views]
        assert contents == ["question about bananas", "answer on bananas"]

        sessions.focus()
        await pilot.press("r")
        assert isinstance(app.screen, TextDialog)
        await pilot.press("ctrl+u")
        await type_text(pilot, "plantains")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmDialog)
        await pilot.press("y")
        await settle(pilot)
        assert screen.session_id is None and not screen.query_one(Transcript).views
    async with Engine(tui_settings) as engine:
        left = {s.id: s.title for s in await engine.sessions.list()}
    assert left == {ids[2]: "cherries", ids[0]: "apples"}


async def test_rename_is_stored(tui_settings: Settings) -> None:
    [sid] = await make_sessions(tui_settings, ["old title"])
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.screen.query_one("#session-list").focus()
        await pilot.press("r")
        dialog = app.screen
        assert isinstance(dialog, TextDialog) and dialog.value == "old title"
        await pilot.press("ctrl+u", *"new", "enter")
        await settle(pilot)
        assert "new" in str(app.screen.query_one("#session-list").get_option_at_index(0).prompt)
    async with Engine(tui_settings) as engine:
        assert (await engine.sessions.get(sid)).session.title == "new"


async def test_declining_the_confirmation_deletes_nothing(tui_settings: Settings) -> None:
    await make_sessions(tui_settings, ["keep me"])
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.screen.query_one("#session-list").focus()
        await pilot.press("d", "n")
        await settle(pilot)
    async with Engine(tui_settings) as engine:
        assert [s.title for s in await engine.sessions.list()] == ["keep me"]


async def test_an_unexpected_error_opens_the_error_dialog_and_the_app_goes_on(
        tui_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    async def broken(self: SessionStore, *args: object, **kwargs: object) -> None:
        raise RuntimeError("search index exploded")

    monkeypatch.setattr(SessionStore, "search", broken)
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+f", "x")
        await wait_until(pilot, lambda: isinstance(app.screen, ErrorDialog))
        dialog = app.screen
        assert isinstance(dialog, ErrorDialog)
        assert "search index exploded" in dialog.message
        assert "RuntimeError" in dialog.details and "Traceback" in dialog.details
        await pilot.press("c")
        assert "search index exploded" in app.clipboard
        await pilot.press("escape")
        assert isinstance(app.screen, ChatScreen)
        await pilot.press("escape", "escape")  # clear the filter, back to the list
        await ask(pilot, "still working?")
        assert app.screen.query_one(Transcript).last_view("assistant") is not None
