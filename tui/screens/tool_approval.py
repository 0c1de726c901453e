"""The approval card: the model wants to run a tool that is not allowed without asking.

It shows the server, the tool, its description, why Parley asks (the approval mode, or
documents in the prompt that may carry instructions) and the full arguments. Keys: ``y``
once, ``s`` for this session, ``a`` always (stored for the user), ``n`` or Esc deny. The
answer streams on; Esc again stops the whole answer.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.binding import Binding

from tui.screens.answer_card import AnswerCard

if TYPE_CHECKING:
    from engine.types import ApprovalRequest


class ToolApproval(AnswerCard[str]):
    """Dismissed with ``once``, ``session``, ``always`` or ``deny``."""

    DEFAULT_CSS = "ToolApproval .card-details { max-height: 16; }"
    BINDINGS = [
        Binding("y", "answer('once')", "Once", id="approval.once"),
        Binding("s", "answer('session')", "This session", id="approval.session"),
        Binding("a", "answer('always')", "Always", id="approval.always"),
        Binding("n,escape", "answer('deny')", "Deny", id="approval.deny"),
    ]
    BUTTONS = (("once", "Once (y)", "primary", "once"),
               ("session", "Session (s)", "default", "session"),
               ("always", "Always (a)", "default", "always"),
               ("deny", "Deny (n)", "error", "deny"))
    FOCUS = "once"
    DETAILS_ID = "approval-arguments"

    def __init__(self, request: ApprovalRequest) -> None:
        super().__init__(f"Run {request.server}.{request.tool}?", request.reason,
                         request.arguments, message=request.description)
        self.request = request
