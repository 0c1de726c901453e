"""Parsed CSS kept between runs (``tui.stylesheet``): the second launch parses nothing and
looks the same, a damaged cache file is parsed over and rewritten, another theme has its
own file."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
import textual.css.stylesheet

from engine import Settings, load_settings
from tests.support.openai_server import OpenAITestServer
from tests.tui.conftest import overrides_for, settle
from tui.app import ParleyApp


@pytest.fixture
def parses(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often Textual parsed each CSS source."""
    counted: Counter[str] = Counter()
    real_parse = textual.css.stylesheet.parse

    def counting_parse(scope: str, css: str, read_from: Any, *args: Any, **kwargs: Any) -> Any:
        counted[str(read_from)] += 1
        return real_parse(scope, css, read_from, *args, **kwargs)

    monkeypatch.setattr(textual.css.stylesheet, "parse", counting_parse)
    return counted


def settings_in(home: Path, server: OpenAITestServer, theme: str | None = None) -> Settings:
    overrides = overrides_for(f"sqlite:///{home / 'parley.db'}", server)
    if theme:
        overrides["ui"] = {"theme": theme}
    return load_settings(overrides=overrides)


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
        parley_home: Path, chat_server: OpenAITestServer, parses: Counter[str]) -> None:
    settings = settings_in(parley_home, chat_server)
    first = await launch(settings)
    assert any("chat.tcss" in source for source in parses)
    assert len(cache_files(parley_home)) == 1
    parses.clear()
    second = await launch(settings)
    assert not parses, parses
    assert second == first


async def test_a_damaged_cache_is_parsed_over_and_rewritten(
        parley_home: Path, chat_server: OpenAITestServer, parses: Counter[str]) -> None:
    settings = settings_in(parley_home, chat_server)
    first = await launch(settings)
    [cached] = cache_files(parley_home)
    cached.write_bytes(b"\x80\x05not a pickle at all")
    parses.clear()
    assert await launch(settings) == first
    assert any("chat.tcss" in source for source in parses)
    parses.clear()
    assert await launch(settings) == first  # rewritten whole by the launch before
    assert not parses


async def test_another_theme_keeps_its_own_rules(
        parley_home: Path, chat_server: OpenAITestServer, parses: Counter[str]) -> None:
    dark = await launch(settings_in(parley_home, chat_server))
    light = await launch(settings_in(parley_home, chat_server, theme="textual-light"))
    assert light["background"] != dark["background"]
    assert len(cache_files(parley_home)) == 2
    parses.clear()
    assert await launch(settings_in(parley_home, chat_server, theme="textual-light")) == light
    assert await launch(settings_in(parley_home, chat_server)) == dark
    assert not parses
