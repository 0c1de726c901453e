"""Parsed CSS kept between runs (``tui.stylesheet``): the second launch parses nothing and
looks the same, a damaged cache file is parsed over and rewritten, another theme has its
own file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from engine import Settings
from tests.support.openai_server import OpenAITestServer
from tests.tui.conftest import settle, sqlite_settings
from tui.app import ParleyApp


async def launch(settings: Settings) -> dict[str, Any]:
    """Start the app, note how the chat screen looks, quit."""
    app = ParleyApp(settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        prompt = app.screen.query_one("#prompt")
        seen = {"background": app.screen.styles.background,
                "prompt": (prompt.styles.border, prompt.styles.background),
                "status": app.screen.query_one("#status-bar").styles.background,
                "footer": app.screen.query_one("Footer").styles.background}
    return seen


def cache_files(home: Path) -> list[Path]:
    return sorted((home / "cache").glob("css-rules-*.pickle"))


async def test_the_second_launch_parses_no_css_and_looks_the_same(
        parley_home: Path, chat_server: OpenAITestServer, css_parses: Counter[str]) -> None:
    settings = await sqlite_settings(parley_home, chat_server)
    first = await launch(settings)
    assert any("chat.tcss" in source for source in css_parses)
    assert len(cache_files(parley_home)) == 1
    css_parses.clear()
    second = await launch(settings)
    assert not css_parses, css_parses
    assert second == first


async def test_a_damaged_cache_is_parsed_over_and_rewritten(
        parley_home: Path, chat_server: OpenAITestServer, css_parses: Counter[str]) -> None:
    settings = await sqlite_settings(parley_home, chat_server)
    first = await launch(settings)
    [cached] = cache_files(parley_home)
    cached.write_bytes(b"\x80\x05not a pickle at all")
    css_parses.clear()
    assert await launch(settings) == first
    assert any("chat.tcss" in source for source in css_parses)
    css_parses.clear()
    assert await launch(settings) == first  # rewritten whole by the launch before
    assert not css_parses


async def test_another_theme_keeps_its_own_rules(
        parley_home: Path, chat_server: OpenAITestServer, css_parses: Counter[str]) -> None:
    dark_settings = await sqlite_settings(parley_home, chat_server)
    light_settings = await sqlite_settings(parley_home, chat_server, theme="textual-light")
    dark = await launch(dark_settings)
    light = await launch(light_settings)
    assert light["background"] != dark["background"]
    assert len(cache_files(parley_home)) == 2
    css_parses.clear()
    assert await launch(light_settings) == light
    assert await launch(dark_settings) == dark
    assert not css_parses
