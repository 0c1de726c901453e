"""The shape of a card that stops to ask the user before something runs (a tool call, a
local MCP server's command line): a title, an optional message, a warning that says why it
asks, the exact thing that would run in a scrolling box, and a button per answer, each with
its key. ``tui.screens.tool_approval`` and ``tui.screens.server_trust`` are its cards.

``ask_card`` shows a card and waits for its answer; a cancelled wait (the answer was
stopped) takes the card away with the refusing answer, so no card outlives its question.
"""

from __future__ import annotations

import asyncio
from typing import Any, ClassVar, TypeVar

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

AnswerT = TypeVar("AnswerT")


class AnswerCard(ModalScreen[AnswerT]):
    """Dismissed with the answer of the key or button pressed. A card sets ``BINDINGS``
    (``action_answer`` with the answer), ``BUTTONS``, ``FOCUS`` and ``DETAILS_ID``, and a
    ``max-height`` for ``.card-details`` in its own CSS."""

    DEFAULT_CSS = """
    AnswerCard .card-details { height: auto; background: $surface; padding: 0 1;
                               margin-bottom: 1; }
    AnswerCard .card-why { height: auto; color: $text-warning; margin-bottom: 1; }
    AnswerCard Button { margin-left: 1; min-width: 10; }
    """
    BUTTONS: ClassVar[tuple[tuple[str, str, str, Any], ...]] = ()
    """(button id, label, variant, answer), left to right."""
    FOCUS: ClassVar[str] = ""
    """The id of the button focused first (Enter alone answers with it)."""
    DETAILS_ID: ClassVar[str] = ""
    """The id of the details text."""

    def __init__(self, title: str, why: str, details: str, *, message: str = "") -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.why = why
        self.details = details
        self.message = message

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box -warning"):
            yield Label(self.title_text, classes="dialog-title")
            if self.message:
                yield Static(self.message, classes="dialog-message", markup=False)
            yield Static(self.why, classes="card-why", markup=False)
            with VerticalScroll(classes="card-details"):
                yield Static(self.details, markup=False, id=self.DETAILS_ID)
            with Horizontal(classes="dialog-buttons"):
                for button_id, label, variant, _ in self.BUTTONS:
                    yield Button(label, variant=variant, id=button_id)  # type: ignore[arg-type]

    def on_mount(self) -> None:
        self.query_one(f"#{self.FOCUS}", Button).focus()

    def action_answer(self, answer: AnswerT) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        answers = {button_id: answer for button_id, _, _, answer in self.BUTTONS}
        if event.button.id in answers:
            self.dismiss(answers[event.button.id])


async def ask_card(app: Any, card: AnswerCard[AnswerT], refused: AnswerT) -> AnswerT:
    """Show ``card`` and wait for its answer (``refused`` when it was closed without one)."""
    answered: asyncio.Future[AnswerT] = asyncio.get_running_loop().create_future()

    def done(answer: AnswerT | None) -> None:
        if not answered.done():
            answered.set_result(refused if answer is None else answer)

    app.push_screen(card, done)
    try:
        return await answered
    except asyncio.CancelledError:
        if card.is_attached:
            card.dismiss(refused)
        raise
