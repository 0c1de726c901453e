"""The trust card: a local MCP server is about to run a command line for the first time
(or a changed one). It shows the exact command, the names of the variables it gets and its
folder. ``t`` trusts it (remembered for this command line), ``n`` or Esc does not: the
server stays stopped, and its tools are not offered, until "Retry servers" in the chat
settings or the next start of Parley.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

if TYPE_CHECKING:
    from engine import Engine
    from engine.types import TrustRequest


class ServerTrust(ModalScreen[bool]):
    """Dismissed with True (trust and start) or False."""

    DEFAULT_CSS = """
    ServerTrust .trust-command { height: auto; max-height: 10; background: $surface;
                                 padding: 0 1; margin-bottom: 1; }
    ServerTrust .trust-why { height: auto; color: $text-warning; margin-bottom: 1; }
    ServerTrust Button { margin-left: 1; min-width: 10; }
    """
    BINDINGS = [
        Binding("t,y", "answer(True)", "Trust and start", id="trust.yes"),
        Binding("n,escape", "answer(False)", "Not now", id="trust.no"),
    ]

    def __init__(self, request: TrustRequest) -> None:
        super().__init__(classes="dialog")
        self.request = request

    def compose(self) -> ComposeResult:
        r = self.request
        why = ("Its command line changed since you trusted it." if r.changed else
               "It has not run before.")
        details = [r.command_line]
        if r.env_names:
            details.append(f"env: {', '.join(r.env_names)}")
        if r.cwd:
            details.append(f"in:  {r.cwd}")
        with Vertical(classes="dialog-box -warning"):
            yield Label(f"Start the MCP server '{r.server}'?", classes="dialog-title")
            yield Static(f"{why} It will run this command with your rights; Parley "
                         "remembers your answer for exactly this command line.",
                         classes="trust-why", markup=False)
            with VerticalScroll(classes="trust-command"):
                yield Static("\n".join(details), markup=False, id="trust-command")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Trust and start (t)", variant="primary", id="trust")
                yield Button("Not now (n)", variant="error", id="refuse")

    def on_mount(self) -> None:
        self.query_one("#refuse", Button).focus()  # Enter alone must not run a program

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "trust")


async def ask_trust(app: Any, request: TrustRequest) -> bool:
    """Show the card and wait for the answer (a cancelled wait takes the card away)."""
    answered: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
    card = ServerTrust(request)

    def done(answer: bool | None) -> None:
        if not answered.done():
            answered.set_result(bool(answer))

    app.push_screen(card, done)
    try:
        return await answered
    except asyncio.CancelledError:
        if card.is_attached:
            card.dismiss(False)
        raise


def install_trust(app: Any, engine: Engine) -> None:
    """Let the engine ask the app before a new local server command runs."""
    trust = engine.tools.trust
    if trust.asker is None:
        async def asker(request: TrustRequest) -> bool:
            return await ask_trust(app, request)

        trust.asker = asker
