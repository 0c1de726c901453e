"""The trust card: a local MCP server is about to run a command line for the first time
(or a changed one). It shows the exact command, the names of the variables it gets and its
folder. ``t`` trusts it (remembered for this command line), ``n`` or Esc does not: the
server stays stopped, and its tools are not offered, until "Retry servers" in the chat
settings or the next start of Parley.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual.binding import Binding

from tui.screens.answer_card import AnswerCard, ask_card

if TYPE_CHECKING:
    from engine import Engine
    from engine.types import TrustRequest


class ServerTrust(AnswerCard[bool]):
    """Dismissed with True (trust and start) or False."""

    DEFAULT_CSS = "ServerTrust .card-details { max-height: 10; }"
    BINDINGS = [
        Binding("t,y", "answer(True)", "Trust and start", id="trust.yes"),
        Binding("n,escape", "answer(False)", "Not now", id="trust.no"),
    ]
    BUTTONS = (("trust", "Trust and start (t)", "primary", True),
               ("refuse", "Not now (n)", "error", False))
    FOCUS = "refuse"  # Enter alone must not run a program
    DETAILS_ID = "trust-command"

    def __init__(self, request: TrustRequest) -> None:
        r = request
        why = ("Its command line changed since you trusted it." if r.changed else
               "It has not run before.")
        details = [r.command_line]
        if r.env_names:
            details.append(f"env: {', '.join(r.env_names)}")
        if r.cwd:
            details.append(f"in:  {r.cwd}")
        super().__init__(f"Start the MCP server '{r.server}'?",
                         f"{why} It will run this command with your rights; Parley remembers "
                         "your answer for exactly this command line.", "\n".join(details))
        self.request = request


async def ask_trust(app: Any, request: TrustRequest) -> bool:
    """Show the card and wait for the answer (a cancelled wait takes the card away)."""
    return await ask_card(app, ServerTrust(request), False)


def install_trust(app: Any, engine: Engine) -> None:
    """Let the engine ask the app before a new local server command runs."""
    trust = engine.tools.trust
    if trust.asker is None:
        async def asker(request: TrustRequest) -> bool:
            return await ask_trust(app, request)

        trust.asker = asker
