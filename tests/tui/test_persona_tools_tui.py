"""Choosing a persona with tools in the app (Ctrl+N, Pilot): the picker says which tools it
gives, the new session takes them (though ``tools.enabled`` is off), the first question is
offered exactly them, and the settings dialog shows them as the session's."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Collapsible, OptionList

from engine import Engine, load_settings
from tests.conftest import migrate
from tests.support.openai_server import OpenAITestServer, calls_script
from tests.tui.conftest import ask, overrides_for, settle, wait_until
from tui.app import ParleyApp
from tui.screens.chat import ChatScreen
from tui.screens.chat_pickers import PersonaPicker
from tui.screens.session_settings import SessionSettingsDialog
from tui.widgets.tool_picker import ToolPicker

SEARCH = [[{"name": "parley__search", "id": "c1", "arguments": {"query": "tea"}}]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_persona_chosen_with_ctrl_n_sets_the_sessions_tools(
        database_url: str, parley_home: Path, chat_server: OpenAITestServer,
        docs: Path) -> None:
    settings = load_settings(overrides=overrides_for(
        database_url, chat_server, tools={"enabled": False, "approval": "auto"},
        personas={"searcher": {"description": "Searches my notes",
                               "tools": ["parley.search"]},
                  "plain": {"description": "No tools", "tools": "none"}}))
    await migrate(settings)
    async with Engine(settings) as engine:
        await engine.library.run_ingest([str(docs)])
    app = ParleyApp(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, PersonaPicker))
        options = app.screen.query_one(OptionList)
        labels = [str(options.get_option_at_index(i).prompt)
                  for i in range(options.option_count)]
        assert "tools: none" in labels[1] and "tools: parley.search" in labels[2]
        options.highlighted = 2  # blank, plain, searcher
        await pilot.press("enter")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen) and screen.session_id is not None
        engine = app.engine
        assert engine is not None
        first_id = screen.session_id
        summary = (await engine.sessions.get(first_id)).session
        assert (summary.tools, summary.tools_persona) == (("parley.search",), "searcher")

        chat_server.tool_calls = calls_script(SEARCH)
        await ask(pilot, "How long does tea steep?")
        first = chat_server.chat_requests[0].json
        assert [t["function"]["name"] for t in first.get("tools", [])] == ["parley__search"]

        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionSettingsDialog))
        picker = app.screen.query_one(ToolPicker)
        assert picker.query_one(Collapsible).title == "Tools · parley.search"
        await pilot.press("escape")
        await settle(pilot)

        # the persona without tools: its chat is offered none
        await pilot.press("ctrl+n")
        await wait_until(pilot, lambda: isinstance(app.screen, PersonaPicker))
        app.screen.query_one(OptionList).highlighted = 1
        await pilot.press("enter")
        await settle(pilot)
        session_id = app.screen.session_id  # type: ignore[attr-defined]
        assert session_id is not None and session_id != first_id
        assert (await engine.sessions.get(session_id)).session.tools == ()
        before = len(chat_server.chat_requests)
        await ask(pilot, "And green tea?")
        assert len(chat_server.chat_requests) > before
        assert "tools" not in chat_server.chat_requests[-1].json
