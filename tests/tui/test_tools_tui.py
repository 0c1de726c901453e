"""Tool calls on the chat screen, driven with Pilot: the approval card, the tool line,
``tools: N`` in the status bar, and stopping during a call."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from engine import Engine, Settings, load_settings
from tests.conftest import migrate
from tests.support.openai_server import OpenAITestServer, calls_script
from tests.tui.conftest import ask, overrides_for, settle, wait_until
from tui.app import ParleyApp
from tui.screens.tool_approval import ToolApproval
from tui.widgets.tool_line import ToolLine

SEARCH = [[{"name": "parley__search", "id": "c1", "arguments": {"query": "capital"}}]]


async def tool_settings(database_url: str, server: OpenAITestServer, docs: Path,
                        **tools: Any) -> Settings:
    settings = load_settings(overrides=overrides_for(
        database_url, server, tools={"enabled": True, **tools}))
    await migrate(settings)
    async with Engine(settings) as engine:
        await engine.library.run_ingest([str(docs)])
    return settings


async def _card(pilot: Pilot[Any]) -> ToolApproval:
    await wait_until(pilot, lambda: isinstance(pilot.app.screen, ToolApproval))
    screen = pilot.app.screen
    assert isinstance(screen, ToolApproval)
    return screen


async def test_approve_once_then_the_tool_line_shows_done(
        database_url: str, parley_home: Path, chat_server: OpenAITestServer,
        docs: Path) -> None:
    settings = await tool_settings(database_url, chat_server, docs, allow=[])
    chat_server.tool_calls = calls_script(SEARCH)
    app = ParleyApp(settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert "tools: on" in str(app.status.tools)
        await ask(pilot, "What is the capital?", wait=False)
        card = await _card(pilot)
        assert card.request.server == "parley" and '"query": "capital"' in card.request.arguments
        await pilot.press("y")
        await settle(pilot)
        (line,) = app.screen.query(ToolLine)
        assert (line.status, line.decision) == ("ok", "once")
        assert "✓ parley.search" in str(line.describe())
        assert app.status.tools == "tools: 1"
        line.focus()
        await pilot.press("enter")
        assert "arguments:" in str(line.describe()) and "capital" in line.result
        # opened again from the database, the answer keeps its tool line
        screen = app.screen
        screen.open_session(screen.session_id)  # type: ignore[attr-defined]
        await settle(pilot)
        (stored,) = app.screen.query(ToolLine)
        assert stored is not line
        assert (stored.status, stored.decision, stored.server) == ("ok", "once", "parley")


async def test_deny_shows_a_denied_line_and_the_answer_goes_on(
        database_url: str, parley_home: Path, chat_server: OpenAITestServer,
        docs: Path) -> None:
    settings = await tool_settings(database_url, chat_server, docs, allow=[])
    chat_server.tool_calls = calls_script(SEARCH)
    app = ParleyApp(settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await ask(pilot, "What is the capital?", wait=False)
        await _card(pilot)
        await pilot.press("n")
        await settle(pilot)
        (line,) = app.screen.query(ToolLine)
        assert line.status == "denied"
        told = chat_server.chat_requests[-1].json["messages"][-1]["content"]
        assert "refused" in told
    async with Engine(settings) as engine:
        (run,) = await engine.tools.runs()
        assert (run.status, run.decision) == ("denied", "denied")


async def test_stop_while_the_card_is_up_keeps_the_turn(
        database_url: str, parley_home: Path, chat_server: OpenAITestServer,
        docs: Path) -> None:
    settings = await tool_settings(database_url, chat_server, docs, allow=[])
    chat_server.tool_calls = calls_script(SEARCH)
    chat_server.tool_preamble = "Let me look that up."
    app = ParleyApp(settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await ask(pilot, "What is the capital?", wait=False)
        await _card(pilot)
        # the card is up; the answer is stopped from outside (as Ctrl-C or Esc would)
        screen = next(s for s in app.screen_stack if s.__class__.__name__ == "ChatScreen")
        screen.stop_turn()  # type: ignore[attr-defined]
        await wait_until(pilot, lambda: not isinstance(app.screen, ToolApproval)
                         and any(line.status == "cancelled" for line in screen.query(ToolLine))
                         and not screen.streaming)  # type: ignore[attr-defined]
    async with Engine(settings) as engine:
        (run,) = await engine.tools.runs()
        assert run.status == "cancelled"
        detail = await engine.sessions.get(run.session_id)  # type: ignore[arg-type]
        assert detail.messages[-1].status == "interrupted"
        assert detail.messages[-1].content.startswith("Let me look that up.")
