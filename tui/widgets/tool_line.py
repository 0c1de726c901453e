"""One line per tool call in an answer: what ran, and how it went.

``▸ parley.search  running…`` becomes ``✓ parley.search · 140 ms · 1.2 kB``, ``✗ error``,
``⊘ denied``, ``⏱ timeout`` or ``■ cancelled``. Enter (or a click) expands it to the
arguments and the result (long results are cut for display; the whole result is stored:
``parley tools runs``).
"""

from __future__ import annotations

import json

from textual.binding import Binding
from textual.content import Content
from textual.widgets import Static

SHOWN_CHARS = 1500
MARKS = {"running": ("▸", "$text-accent"), "ok": ("✓", "$success"), "error": ("✗", "$error"),
         "denied": ("⊘", "$warning"), "timeout": ("⏱", "$warning"),
         "cancelled": ("■", "$warning")}


def _size(chars: int) -> str:
    if chars < 1000:
        return f"{chars} B"
    return f"{chars / 1000:.1f} kB" if chars < 1_000_000 else f"{chars / 1_000_000:.1f} MB"


def _pretty(arguments: str) -> str:
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except ValueError:
        return arguments


class ToolLine(Static, can_focus=True):
    """A tool call of the answer being shown (see the module docstring)."""

    DEFAULT_CSS = """
    ToolLine { height: auto; padding: 0 1; color: $text-muted; }
    ToolLine:focus { background: $boost; color: $text; }
    """
    BINDINGS = [Binding("enter,space", "toggle", "Tool details", id="tool.toggle")]

    def __init__(self, call_id: str, server: str, tool: str, arguments: str, *,
                 status: str = "running", decision: str = "", result: str = "",
                 chars: int = 0, duration_ms: float | None = None,
                 truncated: bool = False) -> None:
        super().__init__(classes="tool-line")
        self.call_id, self.server, self.tool, self.arguments = call_id, server, tool, arguments
        self.status, self.decision, self.result = status, decision, result
        self.chars, self.duration_ms, self.truncated = chars, duration_ms, truncated
        self.expanded = False

    def on_mount(self) -> None:
        self.update(self.describe())

    def finish(self, status: str, decision: str, result: str, chars: int,
               duration_ms: float | None, truncated: bool) -> None:
        """The call ended: show how."""
        self.status, self.decision, self.result = status, decision, result
        self.chars, self.duration_ms, self.truncated = chars, duration_ms, truncated
        self.update(self.describe())

    def describe(self) -> Content:
        mark, style = MARKS.get(self.status, ("?", "$text-muted"))
        parts: list[tuple[str, str] | str] = [(f"{mark} ", style),
                                              (f"{self.server}.{self.tool}", "bold")]
        if self.status == "running":
            waiting = "  waiting for your approval…" if self.decision == "ask" else "  running…"
            parts.append((waiting, "$text-accent"))
        elif self.status == "ok":
            took = f" · {self.duration_ms:.0f} ms" if self.duration_ms is not None else ""
            parts.append((f"{took} · {_size(self.chars)}", "$text-muted"))
            if self.truncated:
                parts.append((" · cut for the model", "$text-muted"))
        else:
            reason = (self.result.splitlines() or [""])[0][:80]
            parts.append((f"  {self.status}", style))
            if reason:
                parts.append((f": {reason}", "$text-muted"))
        if not self.expanded:
            return Content.assemble(*parts)
        shown = self.result if len(self.result) <= SHOWN_CHARS else (
            self.result[:SHOWN_CHARS] + f"\n… {len(self.result) - SHOWN_CHARS} more characters "
            "(parley tools runs --json shows all)")
        parts += ["\n", ("arguments:", "bold"), "\n", _pretty(self.arguments), "\n",
                  ("result:" if self.status == "ok" else "reason:", "bold"), "\n", shown]
        return Content.assemble(*parts)

    def action_toggle(self) -> None:
        self.expanded = not self.expanded
        self.update(self.describe())

    def on_click(self) -> None:
        self.action_toggle()
