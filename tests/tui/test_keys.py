"""Configurable keys: ``ui.keys`` rebinds actions, ``ui.enter_sends: false`` swaps Enter and
Ctrl+J in the prompt, and a bad keymap is a config error before any UI appears."""

from __future__ import annotations

import importlib
import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from textual.binding import Binding
from textual.dom import DOMNode

import tui
from engine import Settings, load_settings
from engine.errors import ConfigError
from tests.conftest import REPO_ROOT
from tests.support.openai_server import OpenAITestServer
from tests.tui.conftest import settle, sqlite_settings, type_text, wait_until
from tui.app import ParleyApp
from tui.keys import SCOPES, all_bindings, check_keys, key_list
from tui.widgets.footer import Footer
from tui.screens.help import HelpScreen
from tui.widgets.prompt import PromptInput
from tui.widgets.transcript import Transcript


def keyed(**ui: Any) -> Settings:
    return load_settings(overrides={"ui": ui})


# -- names -------------------------------------------------------------------------------------
def _binding_classes() -> list[type]:
    """Every class in ``tui`` that declares its own BINDINGS."""
    found = []
    for module in pkgutil.walk_packages(tui.__path__, "tui."):
        if ".cli" in module.name:
            continue
        loaded = importlib.import_module(module.name)
        for value in vars(loaded).values():
            if isinstance(value, type) and issubclass(value, DOMNode) \
                    and value.__module__ == loaded.__name__ and "BINDINGS" in vars(value):
                found.append(value)
    return found


def test_every_binding_has_a_stable_name_in_its_scope_documented_in_the_example() -> None:
    example = (REPO_ROOT / "config.example.yaml").read_text()
    classes = {(module, name): scope for scope, (module, name, _) in SCOPES.items()}
    for cls in _binding_classes():
        scope = classes.get((cls.__module__, cls.__name__))
        assert scope, (f"{cls.__module__}.{cls.__name__} has BINDINGS but no scope in "
                       "tui.keys.SCOPES: add it there (and to CHAINS, where its keys are live)")
        for binding in Binding.make_bindings(vars(cls)["BINDINGS"]):
            assert binding.id and binding.id.startswith(f"{scope}."), (
                f"{cls.__name__}: the binding {binding.key} -> {binding.action} needs "
                f"id='{scope}.<action>' so ui.keys can rebind it")
            assert binding.id in example or binding.id.startswith("transcript.source_"), (
                f"config.example.yaml does not list {binding.id} under ui.keys")
    assert len(all_bindings()) >= 60


# -- the check ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("keys", "message"), [
    ({"chat.regenerate": "ctrl+n"},
     "ui.keys.chat.regenerate (from flag): 'ctrl+n' is already the key of chat.new_session"),
    ({"chat.regenerate": "alt+g", "chat.new_session": "alt+g"},
     "ui.keys.chat.regenerate and ui.keys.chat.new_session are both 'alt+g'"),
    ({"chat.regenrate": "ctrl+g"}, "no action is called 'chat.regenrate'"),
    ({"chat.regenerate": "ctl+g"}, "'ctl' is not a modifier"),
    ({"chat.regenerate": "ctrl+nope"}, "'nope' is not a key name"),
    ({"chat.regenerate": "x"}, "'x' types a character in the prompt"),
    ({"app.search": "?"}, "'question_mark' types a character in the prompt"),
    ({"chat.regenerate": "ctrl+a"}, "the prompt's own action 'cursor_line_start'"),
    ({"sessions.rename": "f2"}, "'f2' is already the key of app.chat"),
    ({"library.refresh": "enter"}, "a table's own action 'select_cursor'"),
])
def test_bad_keymaps_are_config_errors_naming_the_key_path_and_both_actions(
        parley_home: Path, keys: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_keys(keyed(keys=keys))
    assert message in raised.value.message
    assert raised.value.exit_code == 2


def test_good_keymaps_pass_in_every_spelling(parley_home: Path) -> None:
    check_keys(keyed(keys={"chat.regenerate": "alt+g", "search.ask": "alt+a"}))
    # an action may take the key of one that moves elsewhere; keys a widget has apart from
    # where it is focused do not clash (r renames in the sidebar and re-indexes in library)
    check_keys(keyed(keys={"chat.regenerate": "ctrl+n", "chat.new_session": "alt+n",
                           "library.refresh": "r", "library.reindex": "shift+r"}))
    nested = keyed(keys={"chat": {"regenerate": ["alt+g", "F9"]}})
    assert nested.ui.keys == {"chat.regenerate": "alt+g,F9"}
    check_keys(nested)
    assert key_list("Ctrl+G, f9") == ["ctrl+g", "f9"]


# -- in the app --------------------------------------------------------------------------------
async def test_a_rebound_key_works_the_old_one_does_not_and_help_and_footer_show_it(
        parley_home: Path, chat_server: OpenAITestServer) -> None:
    settings = await sqlite_settings(parley_home, chat_server,
                                     keys={"chat.toggle_sidebar": "f9",
                                           "chat.focus_transcript": "alt+m"})
    check_keys(settings)
    app = ParleyApp(settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        sidebar = app.screen.query_one("#sidebar")
        assert sidebar.display
        await pilot.press("ctrl+b")  # the old key does nothing now
        await pilot.pause()
        assert sidebar.display
        await pilot.press("f9")
        await wait_until(pilot, lambda: not sidebar.display)
        await pilot.press("alt+m")
        await wait_until(pilot, lambda: isinstance(app.focused, Transcript))
        assert app.screen.active_bindings["f9"].binding.description == "Sidebar"
        footer = app.screen.query_one(Footer)
        await wait_until(pilot, lambda: any(item.key == "f9" for item in footer.items))
        app.screen.query_one("#prompt").focus()  # fewer keys than the messages: all drawn
        await wait_until(pilot, lambda: " f9 Sidebar " in footer.render().plain)
        assert "^b" not in footer.render().plain
        await pilot.press("f1")
        await wait_until(pilot, lambda: isinstance(app.screen, HelpScreen))
        text = "\n".join(str(s.render()) for s in app.screen.query(".help-rows"))
        assert "F9" in text and "Ctrl+B" not in text
        titles = [str(label.render()) for label in app.screen.query(".help-section")]
        assert "Messages (Alt+M or Shift+Tab from the prompt)" in titles


async def test_enter_adds_a_line_and_ctrl_j_sends_when_enter_sends_is_false(
        parley_home: Path, chat_server: OpenAITestServer) -> None:
    app = ParleyApp(await sqlite_settings(parley_home, chat_server, enter_sends=False))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        prompt = app.screen.query_one(PromptInput)
        transcript = app.screen.query_one(Transcript)
        assert "Ctrl+J sends, Enter new line" in prompt.placeholder
        await type_text(pilot, "hi")
        await pilot.press("enter")
        await type_text(pilot, "there")
        assert prompt.text == "hi\nthere"
        assert transcript.views == []
        footer = app.screen.query_one(Footer)
        await wait_until(pilot, lambda: any(
            item.key == "ctrl+j" and item.description == "Send" for item in footer.items))
        await pilot.press("ctrl+j")
        await wait_until(pilot, lambda: len(transcript.views) == 2)
        await settle(pilot)
        assert transcript.views[0].content == "hi\nthere"
        assert prompt.text == ""


# -- through the real command line -------------------------------------------------------------
def run_parley(parley_home: Path, *args: str, env: dict[str, str] | None = None
               ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    full.update(PARLEY_HOME=str(parley_home), **(env or {}))
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=REPO_ROOT, env=full,
                          capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL)


def test_a_keymap_conflict_stops_the_real_command_before_any_ui(parley_home: Path) -> None:
    config = parley_home / "config.yaml"
    config.write_text("ui:\n  keys:\n    chat.regenerate: ctrl+n\n")
    done = run_parley(parley_home, "--config", str(config))
    assert done.returncode == 2
    assert done.stdout == ""  # no screen was drawn
    assert done.stderr.startswith("parley: error: ui.keys.chat.regenerate (from file): "
                                  "'ctrl+n' is already the key of chat.new_session")
    assert len(done.stderr.strip().splitlines()) == 1


def test_an_unknown_action_from_the_environment_is_named_with_its_origin(
        parley_home: Path) -> None:
    done = run_parley(parley_home,
                      env={"PARLEY_UI__KEYS": json.dumps({"chat.regenrate": "ctrl+g"})})
    assert done.returncode == 2 and done.stdout == ""
    assert "ui.keys.chat.regenrate (from env): no action is called 'chat.regenrate'" \
        in done.stderr
    assert "did you mean 'chat.regenerate'" in done.stderr



def test_the_keys_table_matches_the_classes() -> None:
    """``check_keys`` reads the classes' keys from ``tui/keys_table.py`` (so a keymap costs
    the first paint nothing): the table must say what the classes say."""
    from tui.keys import default_keys
    from tui.keys_table import DEFAULT_KEYS

    assert default_keys() == DEFAULT_KEYS, "a binding changed: run `python -m tui.keys`"
