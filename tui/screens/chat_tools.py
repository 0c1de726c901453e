"""Tool calls on the chat screen: a line per call in the answer, the approval card, and
``tools: N`` in the status bar once a turn offered tools. Imported when a turn runs, not
for the first paint."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from tui.widgets.tool_line import ToolLine

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from engine import Engine
    from engine.types import ApprovalRequest
    from tui.screens.chat_turns import ChatTurns

DENIED = ("deny_list", "never", "no_terminal", "limit", "repeat")


def turn_events(self: ChatTurns, engine: Engine, kind: str, text: str) -> AsyncIterator[Any]:
    """The engine's events of one turn (``kind``: ask, regenerate or edit), with the
    approval card as the approver of tool calls."""
    from tui.screens.server_trust import install_trust

    install_trust(self.app, engine)  # servers start with the turn: new commands ask first
    chat = engine.chat

    async def approver(request: ApprovalRequest) -> str:
        return await approve_tool(self, request)

    if kind == "regenerate":
        assert self.session_id is not None
        return chat.regenerate(self.session_id, approver=approver)
    if kind == "edit":
        assert self.session_id is not None
        return chat.edit_last(self.session_id, text, approver=approver)
    attachments = list(getattr(self, "attachments", ()))  # ChatSetup's
    if self.session_id is None:
        return chat.ask(text, new=True, attachments=attachments, approver=approver)
    return chat.ask(text, session_id=self.session_id, attachments=attachments,
                    approver=approver)


async def approve_tool(self: ChatTurns, request: ApprovalRequest) -> str:
    """Ask on the approval card; a stopped answer takes the card away (denied)."""
    from tui.screens.answer_card import ask_card  # needed only when one asks
    from tui.screens.tool_approval import ToolApproval

    return await ask_card(self.app, ToolApproval(request), "deny")

async def tool_event(self: ChatTurns, event: Any, stream: Any,
                 lines: dict[str, ToolLine]) -> None:
    # here, not at the top: the engine's types are not needed for the first paint
    from engine.types import ToolCallFinished, ToolCallStarted, ToolNotice

    if isinstance(event, ToolCallStarted):
        line = ToolLine(event.call_id, event.server, event.tool, event.arguments,
                        status="denied" if event.decision in DENIED else "running",
                        decision=event.decision)
        lines[event.call_id] = line
        await stream.insert(line)
    elif isinstance(event, ToolCallFinished):
        line = lines.get(event.call_id)
        if line is not None:
            line.finish(event.status, event.decision, event.result, event.chars,
                        event.duration_ms, event.truncated)
    elif isinstance(event, ToolNotice):
        self.notify(event.message, title="Tools", severity="warning", timeout=10)

def end_tool_lines(self: ChatTurns, lines: dict[str, ToolLine]) -> None:
    """The answer ended: a call still running was cancelled; show the tools offered."""
    for line in lines.values():
        if line.status == "running":
            line.finish("cancelled", line.decision, "stopped by you", 0, None, False)
    engine = self.parley.engine
    if engine is None:
        return
    # The session's choice can turn tools on or off whatever tools.enabled says.
    offered = engine.tools.last_offered
    shown = f"tools: {offered}" if offered is not None else (
        "tools: off" if engine.settings.tools.enabled else "")
    self.parley.status = replace(self.parley.status, tools=shown)
