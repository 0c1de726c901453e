"""The help screen: every key binding, generated from the bindings themselves.

Nothing here is written by hand: each section lists the ``BINDINGS`` of a class, so a key
added anywhere shows up here and a removed one disappears.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Label, Static

_KEY_NAMES = {"escape": "Esc", "delete": "Del", "up": "↑", "down": "↓", "left": "←",
              "right": "→", "pageup": "PgUp", "pagedown": "PgDn", "enter": "Enter",
              "home": "Home", "end": "End", "space": "Space", "tab": "Tab"}


def key_label(key: str) -> str:
    """``ctrl+n`` -> ``Ctrl+N``, ``escape`` -> ``Esc``, ``f1`` -> ``F1``."""
    parts = key.split("+")
    out = [p.capitalize() for p in parts[:-1]]
    last = parts[-1]
    if last in _KEY_NAMES:
        out.append(_KEY_NAMES[last])
    elif len(last) == 1:
        out.append(last.upper() if out else last)
    else:
        out.append(last.upper() if last[0] == "f" and last[1:].isdigit() else last.capitalize())
    return "+".join(out)


def binding_rows(bindings: Iterable[BindingType]) -> list[tuple[str, str]]:
    """(keys, description) per described binding; keys of one action are joined."""
    rows: dict[str, list[str]] = {}
    for binding in Binding.make_bindings(bindings):
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


def help_sections(app_class: type) -> list[tuple[str, list[tuple[str, str]]]]:
    """(section title, rows) for the app and every screen and widget with keys."""
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
        ("Everywhere", [*app_class.BINDINGS, Binding("ctrl+p", "", "Command palette")]),
        ("Chat", ChatScreen.BINDINGS),
        ("Prompt", PromptInput.BINDINGS),
        ("Messages (Ctrl+T or Shift+Tab from the prompt)", Transcript.BINDINGS),
        ("Sessions sidebar", [*SessionList.BINDINGS, *Sidebar.BINDINGS]),
        ("Sources panel (Ctrl+S)", [*SourceList.BINDINGS,
                                    Binding("enter", "", "Open source")]),
        ("Search", [*SearchScreen.BINDINGS, *SearchResults.BINDINGS]),
        ("Library", LibraryScreen.BINDINGS),
        ("Usage", UsageScreen.BINDINGS),
        ("Dialogs", [*ConfirmDialog.BINDINGS, *ErrorDialog.BINDINGS]),
    ]
    return [(title, rows) for title, bindings in sections if (rows := binding_rows(bindings))]


class HelpScreen(ModalScreen[None]):
    """Every key, by where it works."""

    BINDINGS = [Binding("escape,f1,q", "dismiss", "Close help")]

    def compose(self) -> ComposeResult:
        with Vertical(id="help-box"):
            yield Label("Keys", classes="dialog-title")
            with VerticalScroll(id="help-scroll"):
                for title, rows in help_sections(type(self.app)):
                    yield Label(title, classes="help-section")
                    width = max(len(keys) for keys, _ in rows) + 3
                    lines = [Content.assemble((keys.ljust(width), "bold $text-accent"), text)
                             for keys, text in rows]
                    yield Static(Content("\n").join(lines), classes="help-rows")
            yield Static("Esc closes. Ctrl+P opens the command palette.", classes="dialog-hint")
