"""The help screen: every key binding, generated from the bindings themselves.

Nothing here is written by hand: each section lists the ``BINDINGS`` of a class with the
keys the keymap gives them (``ui.keys``, ``ui.enter_sends``), so a key added anywhere shows
up here, a removed one disappears and a rebound one shows its new key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static

from tui.keys import effective_bindings, key_hint, key_label

def binding_rows(bindings: Iterable[BindingType], app: Any = None) -> list[tuple[str, str]]:
    """(keys, description) per described binding, with the keys ``app``'s keymap gives
    them; keys of one action are joined."""
    rows: dict[str, list[str]] = {}
    for binding in effective_bindings(bindings, app):
        if not binding.description or binding.system:
            continue
        rows.setdefault(binding.description, []).append(key_label(binding.key))
    out = []
    for description, keys in rows.items():
        if len(keys) > 3 and all(k.isdigit() for k in keys):
            label = f"{keys[0]}…{keys[-1]}"
        else:
            label = " / ".join(keys)
        out.append((label, description))
    return out


def help_sections(app_class: type, app: Any = None) -> list[tuple[str, list[tuple[str, str]]]]:
    """(section title, rows) for the app and every screen and widget with keys (with
    ``app``'s effective keys when given)."""
    from tui.screens.chat import ChatScreen
    from tui.screens.dialogs import ConfirmDialog, ErrorDialog
    from tui.screens.library import LibraryScreen
    from tui.screens.search import SearchResults, SearchScreen
    from tui.screens.usage import UsageScreen
    from tui.widgets.prompt import PromptInput
    from tui.widgets.sessions import SessionList, Sidebar
    from tui.widgets.sources import SourceList
    from tui.widgets.transcript import Transcript

    sections: list[tuple[str, list[BindingType]]] = [
        ("Everywhere", [replace(b, description="Command palette")
                        if isinstance(b, Binding) and b.id == "app.command_palette" else b
                        for b in app_class.BINDINGS]),
        ("Chat", ChatScreen.BINDINGS),
        ("Prompt", PromptInput.BINDINGS),
        (f"Messages ({key_hint(app, 'chat.focus_transcript', 'ctrl+t')} or Shift+Tab from "
         "the prompt)", Transcript.BINDINGS),
        ("Sessions sidebar", [*SessionList.BINDINGS, *Sidebar.BINDINGS]),
        (f"Sources panel ({key_hint(app, 'chat.toggle_sources', 'ctrl+s')})",
         [*SourceList.BINDINGS, Binding("enter", "", "Open source")]),
        ("Search", [*SearchScreen.BINDINGS, *SearchResults.BINDINGS]),
        ("Library", LibraryScreen.BINDINGS),
        ("Usage", UsageScreen.BINDINGS),
        ("Dialogs", [*ConfirmDialog.BINDINGS, *ErrorDialog.BINDINGS]),
    ]
    return [(title, rows) for title, bindings in sections
            if (rows := binding_rows(bindings, app))]


class HelpScreen(ModalScreen[None]):
    """Every key, by where it works."""

    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close help", id="help.close")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll(id="help-scroll"):
                for title, rows in help_sections(type(self.app), self.app):
                    yield Label(title, classes="help-section")
                    width = max(len(keys) for keys, _ in rows) + 3
                    lines = [Content.assemble((keys.ljust(width), "bold $text-accent"), text)
                             for keys, text in rows]
                    yield Static(Content("\n").join(lines), classes="help-rows")
            palette = key_hint(self.app, "app.command_palette", "ctrl+p")
            yield Static(f"Esc closes. {palette} opens the command palette. Change keys with "
                         "ui.keys.", classes="dialog-hint")
