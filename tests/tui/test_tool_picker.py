"""The session's tools in the chat settings dialog (Ctrl+G), and the trust card a new
local MCP server command shows first: a Pilot flow against the real stdio MCP server, and
snapshots of the picker and the card with fixed content."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from textual.app import App, ComposeResult
from textual.widgets import Button, Collapsible, Select, SelectionList, Static

from engine import Engine, load_settings
from engine.types import SessionSummary, ToolInfo, ToolServerInfo, TrustRequest
from tests.conftest import migrate
from tests.support.mcp_launch import stdio_config
from tests.support.openai_server import OpenAITestServer, calls_script
from tests.tui.conftest import ask, overrides_for, settle, wait_until
from tui.app import ParleyApp
from tui.screens.server_trust import ServerTrust
from tui.screens.session_settings import SessionSettingsDialog
from tui.widgets.tool_picker import ToolPicker

SEARCH = [[{"name": "parley__search", "id": "c1", "arguments": {"query": "capital"}}]]


def _servers_text(picker: ToolPicker) -> str:
    return str(picker.query_one("#tools-servers", Static).render())


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_choose_the_sessions_tools_after_trusting_a_new_server(
        database_url: str, parley_home: Path, chat_server: OpenAITestServer,
        docs: Path) -> None:
    settings = load_settings(overrides=overrides_for(
        database_url, chat_server,
        tools={"enabled": False, "allow": ["parley.search", "files.*"]},
        mcp_servers={"files": stdio_config(trusted=False),
                     "remote": {"url": "http://127.0.0.1:9/mcp"}}))
    await migrate(settings)
    async with Engine(settings) as engine:
        await engine.library.run_ingest([str(docs)])
    app = ParleyApp(settings)
    async with app.run_test(size=(120, 44)) as pilot:
        await settle(pilot)
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionSettingsDialog))
        dialog = app.screen
        picker = dialog.query_one(ToolPicker)
        assert picker.query_one(Collapsible).title == "Tools · off (tools.enabled: false)"
        assert not picker.loaded  # nothing starts until the section is opened
        picker.query_one(Collapsible).collapsed = False
        await wait_until(pilot, lambda: isinstance(app.screen, ServerTrust))
        card = app.screen
        assert card.request.server == "files" and not card.request.changed
        assert "tests.support.mcp_server stdio" in card.request.command_line
        await pilot.press("n")  # not now: the server stays stopped
        await wait_until(pilot, lambda: picker.loaded)
        assert "files (stdio) · not trusted" in _servers_text(picker)
        assert "remote (http) · unavailable" in _servers_text(picker)
        listed = picker.query_one("#tools-list", SelectionList)
        assert [listed.get_option_at_index(i).value for i in range(listed.option_count)] == [
            "parley.search"]
        picker.loaded = False
        picker.query_one("#tools-retry", Button).press()  # asks again
        await wait_until(pilot, lambda: isinstance(app.screen, ServerTrust))
        await pilot.press("t")
        await wait_until(pilot, lambda: picker.loaded and listed.option_count > 1)
        assert "files (stdio) · ready" in _servers_text(picker)
        values = [listed.get_option_at_index(i).value for i in range(listed.option_count)]
        assert {"parley.search", "files.add", "files.echo"} <= set(values)
        listed.deselect_all()
        listed.select("parley.search")
        await pilot.pause()
        assert picker.query_one("#tools-mode", Select).value == "some"
        assert picker.query_one(Collapsible).title == "Tools · parley.search"
        await pilot.press("ctrl+s")
        await settle(pilot)
        screen = app.screen
        assert not isinstance(screen, SessionSettingsDialog)
        session_id = screen.session_id  # type: ignore[attr-defined]
        chat_server.tool_calls = calls_script(SEARCH)
        await ask(pilot, "What is the capital?")
        first = next(r.json for r in chat_server.chat_requests if "tools" in r.json)
        assert [t["function"]["name"] for t in first["tools"]] == ["parley__search"]
        assert app.status.tools == "tools: 1"  # on for this chat, though tools.enabled is off
        engine = app.engine
        assert engine is not None
        assert (await engine.sessions.get(session_id)).session.tools == ("parley.search",)
        # opened again: the choice is shown, and the trusted server does not ask again
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: isinstance(app.screen, SessionSettingsDialog))
        again = app.screen.query_one(ToolPicker)
        assert again.query_one("#tools-mode", Select).value == "some"
        again.query_one(Collapsible).collapsed = False
        await wait_until(pilot, lambda: again.loaded)
        ticked = again.query_one("#tools-list", SelectionList).selected
        assert ticked == ["parley.search"]
        await pilot.press("escape")


# -- snapshots -----------------------------------------------------------------------------
def _tool(server: str, name: str, policy: str, description: str) -> ToolInfo:
    return ToolInfo(server, name, description, policy, {}, None)


CATALOG = [
    ToolServerInfo("parley", "builtin", "ready", (
        _tool("parley", "search", "allow", "Search the user's own documents."),)),
    ToolServerInfo("files", "stdio", "ready", (
        _tool("files", "read_file", "allow", "Read a file under the notes folder."),
        _tool("files", "write_file", "ask", "Write a file under the notes folder.")),
        start_ms=840.0),
    ToolServerInfo("web", "stdio", "untrusted", error="MCP server 'web' was not started: "
                   "you did not trust `uvx mcp-server-fetch`"),
    ToolServerInfo("remote", "http", "unavailable",
                   error="MCP server 'remote' could not start: ConnectError"),
]
NOW = datetime(2026, 11, 30, tzinfo=UTC)


class Picker(App[None]):
    CSS_PATH = ParleyApp.CSS_PATH

    def compose(self) -> ComposeResult:
        summary = SessionSummary(1, "Notes", None, None, 0, NOW, NOW,
                                 tools=("parley.search", "files.read_*"))
        yield ToolPicker(summary, enabled=True)

    def on_mount(self) -> None:
        picker = self.query_one(ToolPicker)
        picker.query_one(Collapsible).collapsed = False
        picker.show(CATALOG)


class Card(App[None]):
    CSS_PATH = ParleyApp.CSS_PATH

    def on_mount(self) -> None:
        self.push_screen(ServerTrust(TrustRequest(
            "files", "npx -y @modelcontextprotocol/server-filesystem /home/me/notes",
            ("NOTES_TOKEN",), "/home/me", changed=True)))


def test_tool_picker(snap_compare: Any) -> None:
    assert snap_compare(Picker(), terminal_size=(90, 24))


def test_server_trust_card(snap_compare: Any) -> None:
    assert snap_compare(Card(), terminal_size=(100, 24))
