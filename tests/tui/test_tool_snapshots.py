"""Snapshots of the tool line (running, done, expanded, denied) and of the approval card,
with fixed content. The live flow is covered by ``test_tools_tui.py``."""

from __future__ import annotations

from typing import Any

from textual.app import App, ComposeResult
from textual.containers import Vertical

from engine.types import ApprovalRequest
from tui.app import ParleyApp
from tui.screens.tool_approval import ToolApproval
from tui.widgets.tool_line import ToolLine

ARGS = '{"path": "notes/ssh.md", "lines": [1, 40]}'
RESULT = "# SSH\n\nUse ed25519 keys.\nRotate them every year."


class Lines(App[None]):
    CSS_PATH = ParleyApp.CSS_PATH

    def compose(self) -> ComposeResult:
        with Vertical():
            yield ToolLine("c0", "files", "read_file", ARGS)
            yield ToolLine("c1", "files", "read_file", ARGS, status="ok", decision="once",
                           result=RESULT, chars=1234, duration_ms=140.0)
            yield ToolLine("c2", "files", "read_file", ARGS, status="ok", decision="auto",
                           result=RESULT, chars=48_000, duration_ms=2100.0, truncated=True)
            yield ToolLine("c3", "web", "fetch", '{"url": "https://example.invalid"}',
                           status="denied", decision="denied",
                           result="Not run: the user refused the call to web.fetch.")
            yield ToolLine("c4", "files", "write_file", "{}", decision="ask")


class Card(App[None]):
    CSS_PATH = ParleyApp.CSS_PATH

    def on_mount(self) -> None:
        self.push_screen(ToolApproval(ApprovalRequest(
            "files", "write_file", "Write a file under the notes folder.",
            '{\n  "path": "notes/todo.md",\n  "text": "buy milk"\n}',
            "Asked because approval is 'ask' and the tool is not in tools.allow. Note: 3 "
            "retrieved passages are in the prompt: documents may carry instructions meant "
            "for the model.", 1)))


def test_tool_lines(snap_compare: Any) -> None:
    async def expand(pilot: Any) -> None:
        lines = pilot.app.query(ToolLine)
        lines[1].focus()
        await pilot.press("enter")
        await pilot.pause()

    assert snap_compare(Lines(), terminal_size=(90, 24), run_before=expand)


def test_tool_approval_card(snap_compare: Any) -> None:
    assert snap_compare(Card(), terminal_size=(100, 30))
