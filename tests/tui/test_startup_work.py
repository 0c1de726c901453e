"""What the first frame does and does not do: the sidebar never claims "no sessions" before
it knows, the configuration is validated right after the frame when it was drawn from the
early read, each stylesheet is parsed once, the footer is built once, and a theme change
still restyles everything."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import textual.css.stylesheet
from textual.widgets import Static
from textual.widgets._footer import FooterKey

from engine import Settings, load_settings
from engine.config.early import read_early
from engine.errors import ConfigError
from tests.support.openai_server import OpenAITestServer
from tests.tui.conftest import ask, overrides_for, settle, wait_until
from tui.app import ParleyApp
from tui.screens.chat import ChatScreen
from tui.widgets.sessions import EMPTY_TEXT, LOADING_TEXT, UNAVAILABLE_TEXT


def sidebar_note(app: ParleyApp) -> str | None:
    """The sidebar's note, when it shows one instead of the list."""
    note = app.screen.query_one("#sessions-empty", Static)
    return str(note.content) if note.display else None


async def test_the_sidebar_says_loading_until_the_sessions_are_known(
        tui_settings: Settings, held_engine_open: asyncio.Event) -> None:
    gate = held_engine_open
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
        assert sidebar_note(app) == LOADING_TEXT  # not "No sessions yet": not known yet
        gate.set()
        await settle(pilot)
        assert sidebar_note(app) == EMPTY_TEXT  # now it is known
        await ask(pilot, "What is the capital of France?")
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, ChatScreen)
        assert sidebar_note(app) is None and screen.sidebar.session_list.option_count == 1


async def test_a_database_that_does_not_open_leaves_no_loading_note(
        parley_home: Path, chat_server: OpenAITestServer) -> None:
    settings = load_settings(overrides=overrides_for(
        "postgresql+asyncpg://nobody:secret@127.0.0.1:1/nowhere", chat_server))
    app = ParleyApp(settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: app.status.state == "error", timeout=60)
        await wait_until(pilot, lambda: sidebar_note(app) == UNAVAILABLE_TEXT)


async def test_settings_drawn_early_are_validated_right_after_the_first_frame(
        parley_home: Path, chat_server: OpenAITestServer) -> None:
    (parley_home / "config.yaml").write_text("ui:\n  theme: nord\n  show_sidebar: false\n")
    overrides = overrides_for(f"sqlite:///{parley_home / 'parley.db'}", chat_server)
    early = read_early(None, overrides)
    assert early is not None
    checked: list[Any] = []

    def settle_config() -> Settings:
        checked.append(app.engine)
        return load_settings(None, overrides)

    app = ParleyApp(early, settle=settle_config)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        assert checked == [None]  # validated once, before the engine opened
        assert isinstance(app.settings, Settings) and app.engine is not None
        assert app.theme == "nord" and not app.screen.query_one("#sidebar").display
        assert app.status.model == "test-model" and app.status.state == "ready"


async def test_a_config_error_found_after_the_first_frame_ends_the_app(
        parley_home: Path) -> None:
    early = read_early()
    assert early is not None
    opened: list[bool] = []

    def broken() -> Settings:
        raise ConfigError("unknown config key 'chat.modle' (from file)", "check the spelling")

    app = ParleyApp(early, settle=broken)
    app.open_engine = lambda: opened.append(True)  # type: ignore[method-assign,assignment]
    async with app.run_test(size=(120, 36)) as pilot:
        await pilot.pause()
    assert app.return_code == 2 and app.config_error is not None
    assert "chat.modle" in app.config_error.message
    assert not opened and app.engine is None


async def test_the_first_frame_parses_each_stylesheet_once_and_builds_the_footer_once(
        parley_home: Path, chat_server: OpenAITestServer,
        monkeypatch: pytest.MonkeyPatch) -> None:
    parsed: Counter[str] = Counter()
    real_parse = textual.css.stylesheet.parse

    def counting_parse(scope: str, css: str, read_from: Any, *args: Any, **kwargs: Any) -> Any:
        # one source can be parsed per tie-breaker (a widget's CSS under its subclasses)
        parsed[f"{read_from} {kwargs.get('tie_breaker')} {scope}"] += 1
        return real_parse(scope, css, read_from, *args, **kwargs)

    keys: list[str] = []
    real_key_init = FooterKey.__init__

    def counting_key(self: FooterKey, key: str, *args: Any, **kwargs: Any) -> None:
        keys.append(key)
        real_key_init(self, key, *args, **kwargs)

    monkeypatch.setattr(textual.css.stylesheet, "parse", counting_parse)
    monkeypatch.setattr(FooterKey, "__init__", counting_key)
    frame: dict[str, Any] = {}

    class Measured(ParleyApp):
        def after_first_frame(self) -> None:
            frame.update(parsed=Counter(parsed), keys=list(keys))
            super().after_first_frame()

    settings = load_settings(overrides=overrides_for(f"sqlite:///{parley_home / 'parley.db'}",
                                                     chat_server))
    app = Measured(settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        twice = {s: n for s, n in frame["parsed"].items() if n > 1}
        assert frame["parsed"] and not twice, twice
        assert any("chat.tcss" in source for source in frame["parsed"])
        shown = app.screen.query(FooterKey)
        assert len(frame["keys"]) == len(shown) > 5  # each key built once
        # the footer still follows the focus: the session list has keys of its own
        app.screen.query_one("#session-list").focus()
        await wait_until(pilot, lambda: any(k.description == "Rename"
                                            for k in app.screen.query(FooterKey)))
        app.screen.query_one("#prompt").focus()
        await wait_until(pilot, lambda: not any(k.description == "Rename"
                                                for k in app.screen.query(FooterKey)))
        # a new theme still restyles: its variables are parsed anew
        before = app.screen.styles.background
        app.theme = "nord"
        await settle(pilot)
        assert app.screen.styles.background != before
