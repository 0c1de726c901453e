"""What the first frame does and does not do: the sidebar never claims "no sessions" before
it knows, the configuration is validated right after the frame when it was drawn from the
early read, each stylesheet is parsed once, the footer and the status bar are one widget
each, the sources panel is built when first shown, the first frame written is the whole
screen, and a theme change still restyles everything."""

from __future__ import annotations

import asyncio
import re
from collections import Counter
from pathlib import Path
from typing import Any

from textual.widgets import Static

from engine import Settings, load_settings
from engine.config.early import read_early
from engine.errors import ConfigError
from tests.support.openai_server import OpenAITestServer
from tests.tui.conftest import ask, overrides_for, settle, wait_until
from tui.app import ParleyApp
from tui.screens.chat import ChatScreen
from tui.widgets.footer import Footer
from tui.widgets.sessions import EMPTY_TEXT, LOADING_TEXT, UNAVAILABLE_TEXT
from tui.widgets.sources import SourcesPanel
from tui.widgets.status import StatusBar


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


async def test_the_first_frame_parses_each_stylesheet_once_and_draws_the_bars_as_one_widget(
        parley_home: Path, chat_server: OpenAITestServer, css_parses: Counter[str]) -> None:
    parsed = css_parses
    frame: dict[str, Any] = {}

    class Measured(ParleyApp):
        def after_first_frame(self) -> None:
            footer = self.screen.query_one(Footer)
            frame.update(parsed=Counter(parsed), widgets=len(list(self.screen.walk_children())),
                         footer=footer.render().plain, children=len(footer.children),
                         status=self.screen.query_one(StatusBar).render().plain,
                         sources=len(self.screen.query_one(SourcesPanel).children))
            super().after_first_frame()

    settings = load_settings(overrides=overrides_for(f"sqlite:///{parley_home / 'parley.db'}",
                                                     chat_server))
    app = Measured(settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        twice = {s: n for s, n in frame["parsed"].items() if n > 1}
        assert frame["parsed"] and not twice, twice
        assert any("chat.tcss" in source for source in frame["parsed"])
        # the first frame already shows every key and section, each bar with no children
        assert " ^n New chat " in frame["footer"] and "^p palette" in frame["footer"]
        assert frame["children"] == 0
        assert "Chat F2" in frame["status"] and "Usage F5" in frame["status"]
        assert frame["sources"] == 0 and frame["widgets"] < 30
        # the footer still follows the focus: the session list has keys of its own
        footer = app.screen.query_one(Footer)
        app.screen.query_one("#session-list").focus()
        await wait_until(pilot, lambda: any(k.description == "Rename" for k in footer.items))
        assert "Rename" in footer.render().plain
        app.screen.query_one("#prompt").focus()
        await wait_until(pilot, lambda: not any(k.description == "Rename"
                                                for k in footer.items))
        # the sources panel builds its list when first shown
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: app.screen.query("#source-list").results()
                         and app.screen.query_one("#source-list").has_focus)
        # a new theme still restyles: its variables are parsed anew
        before = app.screen.styles.background
        app.theme = "nord"
        await settle(pilot)
        assert app.screen.styles.background != before


async def test_the_first_frame_sent_to_the_terminal_is_the_whole_screen(
        parley_home: Path, chat_server: OpenAITestServer,
        held_engine_open: asyncio.Event) -> None:
    """Frames drawn during start-up's batch update are dropped; the first one written must
    still be complete (it was a partial one, without the inputs, until the next repaint)."""
    written: list[str] = []

    class Recorded(ParleyApp):
        def _display(self, screen: Any, renderable: Any) -> None:
            if renderable is not None and not self._batch_count and not written:
                text = renderable.render_segments(self.console)
                written.append(re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", text))  # text only
            super()._display(screen, renderable)

    settings = load_settings(overrides=overrides_for(f"sqlite:///{parley_home / 'parley.db'}",
                                                     chat_server))
    app = Recorded(settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await wait_until(pilot, lambda: bool(written))
        first = written[0]
        for part in ("parley", "Usage F5", "opening database", "Filter sessions",
                     "Loading sessions", "sk a question", "earlier questions", "New chat",
                     "palette"):
            assert part in first, part
        held_engine_open.set()
