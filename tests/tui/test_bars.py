"""The footer and the status bar, each drawn as one widget: what they show, what a click on
them does, and what a narrow terminal keeps."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.widgets import Input

from tests.support.openai_server import OpenAITestServer
from tests.tui.conftest import settle, sqlite_settings, wait_until
from tui.app import ParleyApp
from tui.widgets.footer import Footer


class KeysApp(App[None]):
    """Three keys in the footer; ``f7`` is shown but disabled."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "count('new')", "New chat"),
        Binding("ctrl+r", "count('redo')", "Regenerate"),
        Binding("f7", "count('never')", "Never", tooltip="not now"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.pressed: list[str] = []
        self.bells = 0

    def compose(self) -> ComposeResult:
        yield Input()
        yield Footer()

    def action_count(self, what: str) -> None:
        self.pressed.append(what)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        return None if parameters == ("never",) else True  # shown, disabled

    def bell(self) -> None:
        self.bells += 1


def column_of(footer: Footer, description: str) -> int:
    line = footer.render().plain
    assert description in line, line
    return line.index(description)


async def test_a_click_on_a_key_presses_it_and_a_disabled_key_rings_the_bell() -> None:
    app = KeysApp()
    async with app.run_test(size=(100, 10)) as pilot:
        footer = app.query_one(Footer)
        await wait_until(pilot, lambda: len(footer.items) == 3)
        assert [item.enabled for item in footer.items] == [True, True, False]
        await pilot.click(Footer, offset=(column_of(footer, "Regenerate"), 0))
        await wait_until(pilot, lambda: app.pressed == ["redo"])
        await pilot.click(Footer, offset=(column_of(footer, "Never"), 0))
        await wait_until(pilot, lambda: app.bells == 1)
        assert app.pressed == ["redo"]
        # the key under the mouse shows its tooltip; between keys there is none
        await pilot.hover(Footer, offset=(column_of(footer, "Never"), 0))
        await wait_until(pilot, lambda: footer.tooltip == "not now")
        await pilot.hover(Footer, offset=(60, 0))
        await wait_until(pilot, lambda: footer.tooltip is None)


async def test_a_narrow_footer_leaves_out_keys_from_the_end_and_keeps_the_palette() -> None:
    app = KeysApp()
    async with app.run_test(size=(40, 10)) as pilot:
        footer = app.query_one(Footer)
        await wait_until(pilot, lambda: len(footer.items) == 3)
        line = footer.render().plain
        assert len(line) == 40
        assert "New chat" in line and "Never" not in line
        assert line.rstrip().endswith("^p palette")
        await pilot.click(Footer, offset=(line.index("palette"), 0))
        await wait_until(pilot, lambda: app.screen.id == "--command-palette"
                         or type(app.screen).__name__ == "CommandPalette")


async def test_a_click_on_a_section_of_the_status_bar_opens_it(
        parley_home: Path, chat_server: OpenAITestServer) -> None:
    app = ParleyApp(await sqlite_settings(parley_home, chat_server))
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        bar = app.screen.query_one("#status-bar")
        line = bar.render().plain
        assert line.startswith(" ◆ parley") and "sqlite" in line
        await pilot.click("#status-bar", offset=(line.index("Search"), 0))
        await wait_until(pilot, lambda: app.current_mode == "search")
        bar = app.screen.query_one("#status-bar")
        assert "Search F3" in bar.render().plain
