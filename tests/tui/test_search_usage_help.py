"""The search, usage and help screens, the command palette and themes."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from textual.command import CommandList
from textual.widgets import DataTable, Input, Static

from engine import Engine, Settings, load_settings
from tests.support.openai_server import OpenAITestServer
from tests.tui.conftest import ask, ingest, overrides_for, settle, wait_until
from tui.app import ParleyApp
from tui.commands import PALETTE, ParleyCommands
from tui.screens.chat import ChatScreen
from tui.screens.help import HelpScreen, binding_rows, help_sections, key_label
from tui.screens.search import SearchResults, SearchScreen
from tui.screens.usage import UsageScreen
from tui.widgets.charts import BarChart, bar_rows
from tui.widgets.format import highlight, query_terms, when
from tui.widgets.prompt import PromptInput


async def test_search_highlights_filters_and_sends_results_to_the_chat(
        tui_settings: Settings, docs: Path) -> None:
    await ingest(tui_settings, docs)
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f3")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SearchScreen) and app.focused is screen.query_one("#query")
        screen.query_one("#query", Input).value = "capital museums"
        await pilot.press("enter")
        await settle(pilot)
        assert {Path(h.path).name for h in screen.hits} == {"paris.md", "berlin.txt"}
        results = screen.query_one(SearchResults)
        assert app.focused is results
        prompt = results.get_option_at_index(0).prompt
        marked = {prompt.plain[s.start:s.end].lower() for s in prompt.spans
                  if "accent" in str(s.style)}
        assert {"capital", "museums"} <= marked  # the query terms are highlighted

        screen.query_one("#path-glob", Input).value = "*.md"
        screen.query_one("#query", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert {Path(h.path).name for h in screen.hits} == {"paris.md"}

        paris = screen.hits[0]
        await pilot.press("space", "a")  # mark the first result, ask about it
        await settle(pilot)
        chat = app.screen
        assert isinstance(chat, ChatScreen)
        text = chat.query_one(PromptInput).text
        assert text.startswith("Using these passages:") and "paris.md" in text
        assert f"> {paris.text.splitlines()[0]}" in text
        assert app.focused is chat.query_one(PromptInput)


async def test_search_explains_ranks_and_says_when_nothing_matches(
        tui_settings: Settings, docs: Path) -> None:
    await ingest(tui_settings, docs)
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f3")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SearchScreen)
        screen.query_one("#query", Input).value = "Louvre"
        await pilot.press("enter", "ctrl+r")
        await settle(pilot)
        assert screen.explain and screen.hits[0].keyword_rank == 1
        assert "keyword #1" in screen.query_one(SearchResults).get_option_at_index(0).prompt.plain
        screen.query_one("#query", Input).value = "zzzqqq"
        screen.query_one("#query", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        status = str(screen.query_one("#search-status", Static).render())
        assert "Nothing found" in status or screen.hits  # vectors always return neighbours


async def test_usage_shows_tables_chart_and_budget(
        database_url: str, parley_home: Path, chat_server: OpenAITestServer) -> None:
    settings = load_settings(overrides=overrides_for(
        database_url, chat_server, chat={"budget": {"daily": 0.01, "monthly": 1.0}},
        providers={"test": {**chat_server.provider_config(max_retries=0), "models": {
            "test-model": {"input_price": 1000.0, "output_price": 2000.0}}}}))
    from tests.conftest import migrate

    await migrate(settings)
    app = ParleyApp(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await ask(pilot, "What does this cost?")
        await pilot.press("f5")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, UsageScreen)
        by_day = screen.query_one("#by-day", DataTable)
        by_model = screen.query_one("#by-model", DataTable)
        assert by_day.row_count == 2  # today and the total
        models = [str(by_model.get_row_at(i)[0]) for i in range(by_model.row_count)]
        assert "test/test-model" in models
        chart = screen.query_one(BarChart)
        assert chart.data and chart.data[-1][1] > 0
        today = str(screen.query_one("#budget-day", Static).render())
        assert today.startswith("Today:") and "of 0.0100" in today
        await pilot.press("t")
        assert "Tokens per day" in str(screen.query_one("#chart-title").render())
    async with Engine(settings) as engine:
        [row] = await engine.usage.report("day")
        assert row.cost > 0


def test_the_chart_scales_bars_to_its_height() -> None:
    rows = bar_rows([0, 1, 2, 4], height=2, bar_width=1, gap=0)
    assert rows == ["   █", " ▄██"]  # 16 steps: 1 is a quarter, 2 half, 4 full
    assert bar_rows([0, 0], height=1) == [""]


def test_highlighting_marks_query_terms_and_their_forms() -> None:
    assert query_terms("What are the indexed documents?") == ["index", "document"]
    content = highlight("Indexing documents; an index.", "indexed documents")
    marked = [content.plain[s.start:s.end] for s in content.spans]
    assert marked == ["Indexing", "documents", "index"]


async def test_help_lists_every_binding(tui_settings: Settings) -> None:
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        shown = " ".join(str(s.render()) for s in app.screen.query(".help-rows"))
        for _, rows in help_sections(ParleyApp):
            for keys, description in rows:
                assert keys in shown and description in shown
        await pilot.press("escape")
        assert isinstance(app.screen, ChatScreen)
    descriptions = {d for _, rows in help_sections(ParleyApp) for _, d in rows}
    assert {"New chat", "Regenerate", "Send", "Copy code block", "Open source",
            "Ingest a path", "Ask about marked", "Tokens / cost"} <= descriptions
    assert ("1…9", "Select source N") in binding_rows(
        __import__("tui.widgets.transcript", fromlist=["Transcript"]).Transcript.BINDINGS)
    assert key_label("ctrl+n") == "Ctrl+N" and key_label("escape") == "Esc"


async def test_the_palette_offers_the_main_actions(tui_settings: Settings) -> None:
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        provider = ParleyCommands(app.screen)
        hits = [hit async for hit in provider.search("library")]
        assert [hit.text for hit in hits][0] == "Library"
        discovered = [hit.text async for hit in provider.discover()]
        assert discovered == [c.title for c in PALETTE]
        await hits[0].command()
        await settle(pilot)
        assert app.current_mode == "library"
        await app.run_action("goto('chat', 'toggle_sidebar')")
        assert app.current_mode == "chat" and not app.screen.query_one("#sidebar").display
        await pilot.press("ctrl+p")
        await pilot.press(*"new chat")
        await wait_until(pilot, lambda: any(
            "New chat" in str(o.prompt) for o in app.screen.query_one(CommandList).options))
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ChatScreen) and app.screen.session_id is None


@pytest.mark.parametrize(("theme", "expected"), [("nord", "nord"),
                                                 ("no-such-theme", "textual-dark")])
async def test_the_theme_comes_from_the_settings(
        parley_home: Path, chat_server: OpenAITestServer, theme: str, expected: str) -> None:
    settings = load_settings(overrides=overrides_for(
        f"sqlite:///{parley_home / 'parley.db'}", chat_server, ui={"theme": theme}))
    app = ParleyApp(settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.theme == expected
        unknown = [n for n in app._notifications if "Unknown theme" in n.message]
        assert bool(unknown) == (theme != expected)


async def test_a_theme_picked_in_the_app_is_remembered_unless_the_config_sets_one(
        parley_home: Path, chat_server: OpenAITestServer) -> None:
    url = f"sqlite:///{parley_home / 'parley.db'}"
    app = ParleyApp(load_settings(overrides=overrides_for(url, chat_server)))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.theme == "textual-dark"
        app.theme = "gruvbox"
        await settle(pilot)
    assert json.loads((parley_home / "ui-state.json").read_text())["theme"] == "gruvbox"

    app = ParleyApp(load_settings(overrides=overrides_for(url, chat_server)))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.theme == "gruvbox"

    configured = ParleyApp(load_settings(overrides=overrides_for(url, chat_server,
                                                                 ui={"theme": "nord"})))
    async with configured.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert configured.theme == "nord"

    (parley_home / "ui-state.json").write_text("{not json")  # damaged: nothing remembered
    app = ParleyApp(load_settings(overrides=overrides_for(url, chat_server)))
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        assert app.theme == "textual-dark" and not app._notifications


def test_dates_in_the_sidebar_are_compact() -> None:
    now = datetime(2025, 6, 3, 15, 0, tzinfo=UTC)
    assert when(datetime(2024, 1, 2, 12, tzinfo=UTC), now) == "2024-01-02"
    assert when(datetime(2025, 1, 2, 12, tzinfo=UTC), now) == "Jan 02"
    assert len(when(now, now)) == 5  # HH:MM (local time)
