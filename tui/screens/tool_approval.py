"""The approval card: the model wants to run a tool that is not allowed without asking.

It shows the server, the tool, its description, why Parley asks (the approval mode, or
documents in the prompt that may carry instructions) and the full arguments. Keys: ``y``
once, ``s`` for this session, ``a`` always (stored for the user), ``n`` or Esc deny. The
answer streams on; Esc again stops the whole answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Label, Static

if TYPE_CHECKING:
    from engine.types import ApprovalRequest


class ToolApproval(ModalScreen[str]):
    """Dismissed with ``once``, ``session``, ``always`` or ``deny``."""

    DEFAULT_CSS = """
    ToolApproval .approval-args { height: auto; max-height: 16; background: $surface;
                                  padding: 0 1; margin-bottom: 1; }
    ToolApproval .approval-reason { height: auto; color: $text-warning; margin-bottom: 1; }
    ToolApproval Button { margin-left: 1; min-width: 10; }
    """
    BINDINGS = [
        Binding("y", "answer('once')", "Once", id="approval.once"),
        Binding("s", "answer('session')", "This session", id="approval.session"),
        Binding("a", "answer('always')", "Always", id="approval.always"),
        Binding("n,escape", "answer('deny')", "Deny", id="approval.deny"),
    ]

    def __init__(self, request: ApprovalRequest) -> None:
        super().__init__(classes="dialog")
        self.request = request

    def compose(self) -> ComposeResult:
        r = self.request
        with Vertical(classes="dialog-box -warning"):
            yield Label(f"Run {r.server}.{r.tool}?", classes="dialog-title")
            if r.description:
                yield Static(r.description, classes="dialog-message", markup=False)
            yield Static(r.reason, classes="approval-reason", markup=False)
            with VerticalScroll(classes="approval-args"):
                yield Static(r.arguments, markup=False, id="approval-arguments")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Once (y)", variant="primary", id="once")
                yield Button("Session (s)", id="session")
                yield Button("Always (a)", id="always")
                yield Button("Deny (n)", variant="error", id="deny")

    def on_mount(self) -> None:
        self.query_one("#once", Button).focus()

    def action_answer(self, answer: str) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id:
            self.dismiss(event.button.id)
