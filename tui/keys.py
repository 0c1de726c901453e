"""Key bindings users can change: every bindable action's stable name, the effective keymap,
and the check that rejects an unknown action, a bad key or a conflict before the UI starts.

Every ``Binding`` of the app, its screens and widgets carries an ``id`` ``scope.action``
(``chat.new_session``); ``SCOPES`` says which class each scope is. ``ui.keys`` maps such
names to keys and the app hands the result to Textual's keymap (``App.set_keymap``), so the
bindings, the footer and the help screen all use the same effective keys.
``ui.enter_sends: false`` is a keymap too: Enter adds a line, Ctrl+J (or Alt+Enter) sends.

A conflict is two actions on one key where both are live at once: ``CHAINS`` lists the
places focus can be (the focused widget, then its screen, then the app), with Textual's own
keys of the focused widget (the prompt's Ctrl+A, an Input's Ctrl+K) and, where text is
typed, every printable key. Only keys set in ``ui.keys`` are checked: the defaults are known
to work together. The check reads every class's keys from a generated table
(``tui/keys_table.py``), so it costs the first paint nothing even when ``ui.keys`` is set.
"""

from __future__ import annotations

import difflib
import importlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.errors import ConfigError

if TYPE_CHECKING:
    from textual.binding import Binding, BindingType

    from engine import Settings

# scope -> (module, class, where its keys work: for messages)
SCOPES: dict[str, tuple[str, str, str]] = {
    "app": ("tui.app", "ParleyApp", "everywhere"),
    "chat": ("tui.screens.chat", "ChatScreen", "the chat screen"),
    "prompt": ("tui.widgets.prompt", "PromptInput", "the prompt"),
    "transcript": ("tui.widgets.transcript", "Transcript", "the messages"),
    "sessions": ("tui.widgets.sessions", "SessionList", "the sessions list"),
    "sidebar": ("tui.widgets.sessions", "Sidebar", "the sessions sidebar"),
    "sources": ("tui.widgets.sources", "SourceList", "the sources panel"),
    "search": ("tui.screens.search", "SearchScreen", "the search screen"),
    "results": ("tui.screens.search", "SearchResults", "the search results"),
    "library": ("tui.screens.library", "LibraryScreen", "the library screen"),
    "usage": ("tui.screens.usage", "UsageScreen", "the usage screen"),
    "help": ("tui.screens.help", "HelpScreen", "the help screen"),
    "error": ("tui.screens.dialogs", "ErrorDialog", "the error dialog"),
    "confirm": ("tui.screens.dialogs", "ConfirmDialog", "confirmation dialogs"),
    "text": ("tui.screens.dialogs", "TextDialog", "text dialogs (rename)"),
    "settings": ("tui.screens.session_settings", "SessionSettingsDialog",
                 "the chat settings dialog"),
    "personas": ("tui.screens.chat_pickers", "PersonaPicker", "the persona picker"),
    "attach": ("tui.screens.chat_pickers", "AttachDialog", "the attach dialog"),
    "tool": ("tui.widgets.tool_line", "ToolLine", "a tool call's line in an answer"),
    "approval": ("tui.screens.tool_approval", "ToolApproval", "the tool approval card"),
    "trust": ("tui.screens.server_trust", "ServerTrust", "the MCP server trust card"),
}
# Textual widgets focused inside Parley's scopes: only their own keys count.
WIDGETS: dict[str, tuple[str, str, str]] = {
    "=input": ("textual.widgets", "Input", "a text field"),
    "=table": ("textual.widgets", "DataTable", "a table"),
    "=list": ("textual.widgets", "OptionList", "a list"),
}
# Where focus can be, innermost first: the keys of a chain are live together.
CHAINS: tuple[tuple[str, ...], ...] = (
    ("prompt", "chat", "app"),
    ("transcript", "chat", "app"),
    ("sessions", "sidebar", "chat", "app"),
    ("=input", "sidebar", "chat", "app"),
    ("sources", "chat", "app"),
    ("results", "search", "app"),
    ("=input", "search", "app"),
    ("=table", "library", "app"),
    ("=list", "library", "app"),
    ("=table", "usage", "app"),
    ("help", "app"),
    ("error", "app"),
    ("confirm", "app"),
    ("=input", "text", "app"),
    ("=input", "settings", "app"),
    ("=list", "settings", "app"),
    ("=list", "personas", "app"),
    ("=input", "attach", "app"),
    ("tool", "transcript", "chat", "app"),
    ("approval", "app"),
    ("trust", "app"),
)
TYPING = {"prompt", "=input"}  # where a printable key is text, not a command

ENTER_ADDS_LINE = {"prompt.submit": "ctrl+j,alt+enter", "prompt.newline": "enter,shift+enter"}
"""The keymap of ``ui.enter_sends: false``."""

MODIFIERS = ("ctrl", "alt", "shift", "super", "meta", "hyper")
NAMED_KEYS = {"enter", "escape", "tab", "backspace", "delete", "insert", "home", "end",
              "pageup", "pagedown", "up", "down", "left", "right", "space"}
_ALIASES = {"esc": "escape", "return": "enter", "del": "delete", "pgup": "pageup",
            "pgdn": "pagedown", "ins": "insert", "control": "ctrl", "option": "alt",
            "cmd": "super"}
_FUNCTION_KEY = re.compile(r"f([1-9]|1[0-9]|2[0-4])")


def normalize_key(key: str) -> str:
    """``Ctrl+N`` -> ``ctrl+n``, ``?`` -> ``question_mark`` (Textual's key names); raises
    ``ValueError`` with the reason for something that is not a key."""
    from textual.keys import _character_to_key, key_to_character

    text = key.strip()
    if not text:
        raise ValueError("an empty key")
    parts = text.split("+") if text != "+" else ["+"]
    if text.endswith("++"):  # ctrl++ : the plus key with a modifier
        parts = [*text[:-2].split("+"), "+"]
    *mods, last = parts
    mods = [_ALIASES.get(m.strip().lower(), m.strip().lower()) for m in mods]
    for mod in mods:
        if mod not in MODIFIERS:
            raise ValueError(f"'{mod}' is not a modifier (use {', '.join(MODIFIERS)})")
    if len(last) == 1:
        name = _character_to_key(last)
    else:
        name = _ALIASES.get(last.lower(), last.lower())
        if name not in NAMED_KEYS and not _FUNCTION_KEY.fullmatch(name) \
                and key_to_character(name) is None:
            raise ValueError(f"'{last}' is not a key name (e.g. a, f5, enter, escape, "
                             "space, up, pageup)")
    if mods and len(last) == 1 and last.isalpha():
        name = name.lower()  # ctrl+N is ctrl+n: terminals do not send the case
    return "+".join(sorted(set(mods), key=MODIFIERS.index) + [name])


def key_list(value: str) -> list[str]:
    """The normalized keys of a comma-separated list (``"ctrl+n, f6"``)."""
    if value.strip() == ",":
        return ["comma"]
    return [normalize_key(k) for k in value.split(",") if k.strip()] or [normalize_key("")]


def keymap(settings: Settings) -> dict[str, str]:
    """Binding id -> keys (comma-separated), for ``App.set_keymap``."""
    out = {} if settings.ui.enter_sends else dict(ENTER_ADDS_LINE)
    for name, value in settings.ui.keys.items():
        try:
            out[name] = ",".join(key_list(value))
        except ValueError:
            out[name] = value  # check_keys reports it; never reached from the command line
    return out


def keys_for(app: Any, binding_id: str, default: str) -> list[str]:
    """The effective keys of ``binding_id`` in ``app`` (``default`` when not remapped)."""
    settings = getattr(app, "settings", None)
    mapped = keymap(settings).get(binding_id) if settings is not None else None
    return (mapped or default).split(",")


def key_hint(app: Any, binding_id: str, default: str) -> str:
    """The first effective key of ``binding_id`` as people write it: ``Ctrl+N``."""
    return key_label(keys_for(app, binding_id, default)[0])


_KEY_NAMES = {"escape": "Esc", "delete": "Del", "up": "↑", "down": "↓", "left": "←",
              "right": "→", "pageup": "PgUp", "pagedown": "PgDn", "enter": "Enter",
              "home": "Home", "end": "End", "space": "Space", "tab": "Tab"}


def key_label(key: str) -> str:
    """``ctrl+n`` -> ``Ctrl+N``, ``escape`` -> ``Esc``, ``f1`` -> ``F1``."""
    from textual.keys import key_to_character

    parts = key.split("+")
    out = [p.capitalize() for p in parts[:-1]]
    last = parts[-1]
    char = key_to_character(last)
    if last in _KEY_NAMES:
        out.append(_KEY_NAMES[last])
    elif char is not None and len(last) > 1 and char.isprintable():
        out.append(char)
    elif len(last) == 1:
        out.append(last.upper() if out else last)
    else:
        out.append(last.upper() if last[0] == "f" and last[1:].isdigit() else last.capitalize())
    return "+".join(out)


def effective_bindings(bindings: Iterable[BindingType], app: Any) -> list[Binding]:
    """``bindings`` one per key, with the keys ``app``'s keymap gives them."""
    from textual.binding import Binding

    settings = getattr(app, "settings", None)
    mapped = keymap(settings) if settings is not None else {}
    out: list[Binding] = []
    seen: set[str] = set()
    for binding in Binding.make_bindings(bindings):
        if binding.id in mapped:
            if binding.id in seen:
                continue
            seen.add(binding.id)
            out.extend(binding.with_key(key) for key in mapped[binding.id].split(","))
        else:
            out.append(binding)
    return out


# -- the check ---------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class _Owner:
    """Who a key belongs to in a chain: a named action, a widget's own key, or typing."""

    name: str  # "chat.new_session", or the widget's own action ("delete_word_left")
    scope: str
    named: bool


def _class(scope: str) -> type:
    module, name, _ = SCOPES.get(scope) or WIDGETS[scope]
    return getattr(importlib.import_module(module), name)  # type: ignore[no-any-return]


def all_bindings() -> dict[str, Binding]:
    """Every named binding (its first key's ``Binding``), by id."""
    from textual.binding import Binding

    out: dict[str, Binding] = {}
    for scope in SCOPES:
        for binding in Binding.make_bindings(_class(scope).__dict__.get("BINDINGS", [])):
            if binding.id:
                out.setdefault(binding.id, binding)
    return out


def _default_keys(scope: str) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """(id -> default keys of the scope's named bindings, [(key, action)] of its others)."""
    from textual.binding import Binding

    cls = _class(scope)
    named: dict[str, list[str]] = {}
    for binding in Binding.make_bindings(cls.__dict__.get("BINDINGS", [])):
        if binding.id:
            named.setdefault(binding.id, []).append(normalize_key(binding.key))
    named_actions = {b.action for b in Binding.make_bindings(cls.__dict__.get("BINDINGS", []))
                     if b.id}
    own_keys = {k for keys in named.values() for k in keys}
    merged = cls._merge_bindings().key_to_bindings  # type: ignore[attr-defined]
    others = [(normalize_key(key), binding.action)
              for key, bindings in merged.items() for binding in bindings
              if not binding.id and binding.action not in named_actions
              and normalize_key(key) not in own_keys]
    return named, others


def default_keys() -> dict[str, tuple[dict[str, list[str]], list[tuple[str, str]]]]:
    """``_default_keys`` of every scope, from the classes (imports every screen)."""
    return {scope: _default_keys(scope) for scope in sorted({s for c in CHAINS for s in c})}


def write_table() -> None:
    """Regenerate ``tui/keys_table.py`` (``python -m tui.keys``) after a binding changed."""
    from pathlib import Path
    from pprint import pformat

    text = (f'"""{TABLE_DOC}"""\n\nDEFAULT_KEYS = {pformat(default_keys(), width=95)}\n')
    Path(__file__).with_name("keys_table.py").write_text(text, encoding="utf-8")


TABLE_DOC = """The default keys of every scope, as ``tui.keys._default_keys`` reads them from the
classes: (binding id -> keys, [(key, action)] of the class's unnamed bindings).

Generated by ``python -m tui.keys``: checking ``ui.keys`` reads this table instead of
importing every screen before the first frame. ``tests/tui/test_keys.py`` fails when it no
longer matches the classes.
"""


def _origin(settings: Settings, name: str) -> str:
    where = settings.sources.get(f"ui.keys.{name}")
    return f" (from {where})" if where else ""


def check_keys(settings: Settings) -> None:
    """Raise ``ConfigError`` for an unknown action, a bad key or a conflict in ``ui.keys``."""
    wanted = settings.ui.keys
    if not wanted:
        return
    for name, value in wanted.items():
        try:
            key_list(value)
        except ValueError as exc:
            raise ConfigError(f"ui.keys.{name}{_origin(settings, name)}: '{value}' is not a "
                              f"key: {exc}", "keys look like ctrl+n, f5, alt+up, escape; "
                              "several: \"ctrl+n,f6\"") from None
    from tui.keys_table import DEFAULT_KEYS  # the classes' keys, without importing them

    scopes = DEFAULT_KEYS
    known = {name for named, _ in scopes.values() for name in named}
    for name in wanted:
        if name not in known:
            close = difflib.get_close_matches(name, sorted(known), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise ConfigError(f"ui.keys.{name}{_origin(settings, name)}: no action is "
                              f"called '{name}'",
                              f"{hint}the actions are listed under ui.keys in "
                              "config.example.yaml")
    effective = keymap(settings)
    for chain in CHAINS:
        _check_chain(settings, chain, scopes, effective)


def _check_chain(settings: Settings, chain: tuple[str, ...],
                 scopes: Mapping[str, tuple[dict[str, list[str]], list[tuple[str, str]]]],
                 effective: Mapping[str, str]) -> None:
    owners: dict[str, list[_Owner]] = {}
    for scope in chain:
        named, others = scopes[scope]
        for name, defaults in named.items():
            keys = effective[name].split(",") if name in effective else defaults
            for key in keys:
                owners.setdefault(key, []).append(_Owner(name, scope, True))
        for key, action in others:  # Textual's own keys (the prompt's ctrl+a, tab)
            owners.setdefault(key, []).append(_Owner(action, scope, False))
    typing_label = (SCOPES.get(chain[0]) or WIDGETS[chain[0]])[2]
    for name in settings.ui.keys:
        if not any(name in scopes[scope][0] for scope in chain):
            continue
        for key in effective[name].split(","):
            clash = [o for o in owners.get(key, []) if o.name != name]
            if clash:
                raise _conflict(settings, name, key, clash[0], chain)
            if chain[0] in TYPING and _printable(key):
                raise ConfigError(
                    f"ui.keys.{name}{_origin(settings, name)}: '{key}' types a character in "
                    f"{typing_label}, so it cannot run {name} there",
                    "use a key with ctrl or alt, or a function key")


def _printable(key: str) -> bool:
    from textual.keys import key_to_character

    if "+" in key and key.rsplit("+", 1)[0] != "shift":
        return False
    char = key_to_character(key.rsplit("+", 1)[-1])
    return char is not None and char.isprintable()


def _conflict(settings: Settings, name: str, key: str, other: _Owner,
              chain: tuple[str, ...]) -> ConfigError:
    # where the two meet: the narrower of their scopes
    scope = chain[min(chain.index(name.split(".", 1)[0]), chain.index(other.scope))]
    where = (f"{SCOPES[chain[1]][2]}, with {WIDGETS[scope][2]} focused" if scope in WIDGETS
             else SCOPES[scope][2])
    if other.named and other.name in settings.ui.keys:
        message = (f"ui.keys.{name} and ui.keys.{other.name} are both '{key}' "
                   f"({name} and {other.name} both work in {where})")
    elif other.named:
        message = (f"ui.keys.{name}{_origin(settings, name)}: '{key}' is already the key of "
                   f"{other.name} ({name} and {other.name} both work in {where})")
    else:
        label = (SCOPES.get(other.scope) or WIDGETS[other.scope])[2]
        message = (f"ui.keys.{name}{_origin(settings, name)}: '{key}' is already the key of "
                   f"{label}'s own action '{other.name}' ({name} works in {where})")
    hint = ("choose another key" + (f", or give {other.name} another key in ui.keys too"
                                    if other.named else ""))
    return ConfigError(message, hint)


if __name__ == "__main__":
    write_table()
