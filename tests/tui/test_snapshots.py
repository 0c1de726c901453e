"""Snapshots of the main screens (pytest-textual-snapshot) at 120x36 with fixed content.

Everything rendered is deterministic: timestamps are fixed in the database, the clock of
the usage screen and the search timer are fixed, the time zone is UTC, paths live under
a home directory shown as ``~``, and cursors do not blink. Update with
``pytest tests/tui/test_snapshots.py --snapshot-update`` after a deliberate change, and
look at the new pictures before committing them.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from textual.pilot import Pilot
from textual.widgets import Input, TextArea

from engine import Engine, Settings, load_settings
from engine.db import models as m
from tests.support.openai_server import OpenAITestServer
from tests.tui.conftest import BERLIN, PARIS, overrides_for, settle
from tui.app import ParleyApp

SIZE = (120, 36)
FIXED = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
ANSWER = ("Paris is the capital of France [1]. It is known for the **Louvre**:\n\n"
          "```python\nprint(\"Bonjour\")\n```\n")


@pytest.fixture
def home(tmp_path: Path, parley_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A home directory (paths show as ``~/...``) in UTC, with two documents."""
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "paris.md").write_text(PARIS)
    (docs / "berlin.txt").write_text(BERLIN)
    yield tmp_path
    monkeypatch.delenv("TZ")
    time.tzset()


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply=ANSWER) as srv:
        yield srv


def make_settings(home: Path, server: OpenAITestServer, **extra: Any) -> Settings:
    return load_settings(overrides=overrides_for(
        f"sqlite:///{home / 'parley.db'}", server, **extra))


async def seed(settings: Settings, home: Path, *, chat: bool = False,
               broken: bool = False) -> None:
    """Ingest the documents (and ask one question), then pin every timestamp."""
    if broken:
        (home / "docs" / "notes.pdf").write_bytes(b"%PDF-1.7 truncated")
    async with Engine(settings) as engine:
        await engine.library.run_ingest([str(home / "docs")])
        if chat:
            async for _ in engine.chat.ask("What is the capital of France?", new=True):
                pass
        async with engine.db.write() as s:  # type: ignore[union-attr]
            await s.execute(update(m.Session).values(created_at=FIXED, updated_at=FIXED))
            await s.execute(update(m.Message).values(created_at=FIXED))
            await s.execute(update(m.Document).values(indexed_at=FIXED))
            await s.execute(update(m.IngestionRun).values(started_at=FIXED, finished_at=FIXED))


def still(pilot: Pilot[Any]) -> None:
    """No blinking cursors in a picture."""
    for widget in pilot.app.screen.query("TextArea, Input"):
        assert isinstance(widget, TextArea | Input)
        widget.cursor_blink = False


def before(*keys: str, then: Callable[[Pilot[Any]], Any] | None = None):  # type: ignore[no-untyped-def]
    async def run(pilot: Pilot[Any]) -> None:
        await settle(pilot)
        if keys:
            await pilot.press(*keys)
            await settle(pilot)
        if then is not None:
            result = then(pilot)
            if asyncio.iscoroutine(result):
                await result
            await settle(pilot)
        still(pilot)
        await pilot.pause()
    return run


def test_chat_with_a_short_transcript(snap_compare: Any, home: Path,
                                      server: OpenAITestServer) -> None:
    settings = make_settings(home, server)
    asyncio.run(seed(settings, home, chat=True))

    def open_first(pilot: Pilot[Any]) -> None:
        pilot.app.screen.query_one("#session-list").highlighted = 0
        pilot.app.screen.open_session(1)  # type: ignore[attr-defined]

    assert snap_compare(ParleyApp(settings), terminal_size=SIZE,
                        run_before=before(then=open_first))


def test_chat_empty(snap_compare: Any, home: Path, server: OpenAITestServer) -> None:
    assert snap_compare(ParleyApp(make_settings(home, server)), terminal_size=SIZE,
                        run_before=before())


def test_library(snap_compare: Any, home: Path, server: OpenAITestServer) -> None:
    settings = make_settings(home, server)
    asyncio.run(seed(settings, home, broken=True))
    assert snap_compare(ParleyApp(settings), terminal_size=SIZE, run_before=before("f4"))


def test_search(snap_compare: Any, home: Path, server: OpenAITestServer,
                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tui.screens.search.clock", lambda: 0.0)
    settings = make_settings(home, server)
    asyncio.run(seed(settings, home))

    async def search(pilot: Pilot[Any]) -> None:
        pilot.app.screen.query_one("#query", Input).value = "capital museum"
        await pilot.press("enter")

    assert snap_compare(ParleyApp(settings), terminal_size=SIZE,
                        run_before=before("f3", then=search))


def test_usage(snap_compare: Any, home: Path, server: OpenAITestServer,
               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("tui.screens.usage.local_today", lambda: date(2024, 3, 10))
    settings = make_settings(home, server, chat={"budget": {"daily": 0.5, "monthly": 5.0}})

    async def record() -> None:
        async with Engine(settings) as engine:
            calls = [(1, "test", "test-model", 1200, 300, 0.012), (1, None, "extractive", 400, 90,
                                                                    0.0),
                     (4, "test", "test-model", 5200, 1400, 0.061),
                     (9, "test", "big-model", 2100, 800, 0.24),
                     (10, "test", "test-model", 800, 200, 0.009)]
            for day, provider, model, prompt, completion, cost in calls:
                await engine.usage.record("chat", provider=provider, model=model,
                                          prompt_tokens=prompt, completion_tokens=completion,
                                          cost=cost)
                async with engine.db.write() as s:  # type: ignore[union-attr]
                    newest = await s.scalar(m.TokenUsage.__table__.select()
                                            .with_only_columns(m.TokenUsage.id)
                                            .order_by(m.TokenUsage.id.desc()).limit(1))
                    await s.execute(update(m.TokenUsage).where(m.TokenUsage.id == newest)
                                    .values(created_at=datetime(2024, 3, day, 12, tzinfo=UTC)))

    asyncio.run(record())
    assert snap_compare(ParleyApp(settings), terminal_size=SIZE, run_before=before("f5"))


def test_help(snap_compare: Any, home: Path, server: OpenAITestServer) -> None:
    assert snap_compare(ParleyApp(make_settings(home, server)), terminal_size=SIZE,
                        run_before=before("f1"))


def test_chat_settings_dialog(snap_compare: Any, home: Path, server: OpenAITestServer) -> None:
    settings = make_settings(home, server)
    asyncio.run(seed(settings, home, chat=True))

    def open_settings(pilot: Pilot[Any]) -> None:
        pilot.app.screen.open_session(1)  # type: ignore[attr-defined]

    async def settings_dialog(pilot: Pilot[Any]) -> None:
        open_settings(pilot)
        await settle(pilot)
        await pilot.press("ctrl+g")

    assert snap_compare(ParleyApp(settings), terminal_size=SIZE,
                        run_before=before(then=settings_dialog))


def test_persona_picker(snap_compare: Any, home: Path, server: OpenAITestServer) -> None:
    settings = make_settings(home, server, personas={
        "tea": {"description": "Questions about tea", "collections": ["default"],
                "first_message": "What tea do I have?"},
        "reviewer": {"description": "Reviews code", "system_prompt": "Review carefully."}})
    asyncio.run(seed(settings, home))
    assert snap_compare(ParleyApp(settings), terminal_size=SIZE, run_before=before("ctrl+n"))


def test_attachment_chip(snap_compare: Any, home: Path, server: OpenAITestServer) -> None:
    (home / "notes.txt").write_text("Groceries.\n\nOolong tea is rolled by hand.\n")

    async def attach(pilot: Pilot[Any]) -> None:
        screen: Any = pilot.app.screen
        still(pilot)  # before the text: a line drawn while blinking may keep its cursor
        screen.query_one(TextArea).load_text("How is oolong made?")
        screen.attach_file(str(home / "notes.txt"))
        await settle(pilot)
        pilot.app.clear_notifications()  # the toast names a temporary path

    assert snap_compare(ParleyApp(make_settings(home, server)), terminal_size=SIZE,
                        run_before=before(then=attach))
