"""Choosing how a chat starts and what goes with a question: the persona picker (Ctrl+N
when personas exist) and the attach dialog (a path with completion). Imported when first
opened, never before first paint.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.suggester import Suggester
from textual.widgets import Button, Input, Label, OptionList, Static
from textual.widgets.option_list import Option

if TYPE_CHECKING:
    from engine.types import PersonaInfo

BLANK = ""


def persona_prompt(persona: PersonaInfo) -> Content:
    """Name and origin, then what the persona sets."""
    model = "/".join(x for x in (persona.provider, persona.model) if x) or "configured model"
    scope = ", ".join(persona.collections) or "all collections"
    tools = None if persona.tools is None else f"tools: {', '.join(persona.tools) or 'none'}"
    detail = " · ".join(x for x in (persona.description, model, scope, tools) if x)
    return Content.assemble((persona.name, "bold"), (f"  {persona.origin}", "$text-muted"),
                            "\n", (detail, "$text-muted"))


class PersonaPicker(ModalScreen[str | None]):
    """Start a blank chat or one set up by a persona. Dismissed with the persona's name,
    ``BLANK`` for a blank chat, or None (cancelled)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="personas.cancel")]

    def __init__(self, personas: Sequence[PersonaInfo]) -> None:
        super().__init__(classes="dialog")
        self.personas = list(personas)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box", id="persona-box"):
            yield Label("New chat", classes="dialog-title")
            yield OptionList(
                Option(Content.assemble(("Blank chat", "bold"), "\n",
                                        ("the configured model, all collections",
                                         "$text-muted")), id="\x00blank"),
                *[Option(persona_prompt(p), id=p.name) for p in self.personas],
                id="persona-list")
            yield Static("Enter starts the chat, Esc cancels. Personas live under personas: "
                         "in the config file, or 'parley personas save'.", classes="dialog-hint")

    def on_mount(self) -> None:
        picker = self.query_one(OptionList)
        picker.highlighted = 0
        picker.focus()

    @on(OptionList.OptionSelected)
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(BLANK if event.option.id == "\x00blank" else event.option.id)

    def action_cancel(self) -> None:
        self.dismiss(None)


class PathSuggester(Suggester):
    """Completes a file path: the first entry of its folder that starts with what is typed
    (folders end with a slash, so the next Tab goes on inside)."""

    def __init__(self) -> None:
        super().__init__(use_cache=False, case_sensitive=True)

    async def get_suggestion(self, value: str) -> str | None:
        if not value:
            return None
        expanded = os.path.expanduser(value)
        folder, start = os.path.split(expanded)
        try:
            names = sorted(os.listdir(folder or "."))
        except OSError:
            return None
        for name in names:
            if name.startswith(start) and name != start and (start or not name.startswith(".")):
                full = os.path.join(folder, name)
                suffix = "/" if os.path.isdir(full) else ""
                return value + name[len(start):] + suffix
        return None


class AttachDialog(ModalScreen[str | None]):
    """Ask for a file to attach (→ completes the path). Dismissed with it, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="attach.cancel")]

    def __init__(self, start: str = "") -> None:
        super().__init__(classes="dialog")
        self.start = start

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box", id="attach-box"):
            yield Label("Attach a file to the question", classes="dialog-title")
            yield Input(self.start, placeholder="path/to/file (text, Markdown, HTML, PDF, code)",
                        suggester=PathSuggester(), id="attach-path")
            yield Static("→ completes the path. The file goes with your next question as a "
                         "source the answer can cite. Long pastes become attachments too.",
                         classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Attach", variant="primary", id="ok")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def _done(self) -> None:
        value = self.query_one(Input).value.strip()
        self.dismiss(str(Path(value).expanduser()) if value else None)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        self._done()

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self._done()
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
