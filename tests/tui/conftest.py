"""Fixtures for the terminal UI: a local model server, settings that use it, helpers.

Every flow runs the real app (``ParleyApp``) with a real engine on a real database (both
backends through ``database_url``) and real HTTP to ``OpenAITestServer`` on 127.0.0.1, for
answers and for embeddings (so no model has to load).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import textual.css.stylesheet
from textual.pilot import Pilot
from textual.worker import WorkerCancelled

from engine import Engine, Settings, load_settings
from tests.conftest import migrate
from tests.support.openai_server import OpenAITestServer
from tui.open_source import OpenCommand, SourceOpener

REPLY = "Paris is the capital of France [1]."
PARIS = ("# Paris\n\nParis is the capital of France. It is known for the Louvre museum.\n\n"
         "## History\n\nParis was founded in the 3rd century BC by the Parisii.\n")
BERLIN = "Berlin is the capital of Germany.\nIt has many museums too.\n"


def overrides_for(database_url: str, server: OpenAITestServer, **extra: Any) -> dict[str, Any]:
    """Settings overrides: this database, the test server for chat and embeddings."""
    values: dict[str, Any] = {
        "database": {"url": database_url},
        "providers": {"test": server.provider_config(max_retries=0)},
        "chat": {"provider": "test", "model": "test-model"},
        "embedding": {"provider": "test", "model": "test-embedding"},
    }
    for key, value in extra.items():
        values[key] = {**values.get(key, {}), **value}
    return values


async def sqlite_settings(home: Path, server: OpenAITestServer, **ui: Any) -> Settings:
    """Settings on a migrated SQLite file in ``home``, with these ``ui`` keys."""
    settings = load_settings(overrides=overrides_for(f"sqlite:///{home / 'parley.db'}", server,
                                                     ui=ui))
    await migrate(settings)
    return settings


@pytest.fixture
def css_parses(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How often Textual parsed each CSS source, by where it was read from, its tie-breaker
    and scope (one source can be parsed per tie-breaker: a widget's CSS under subclasses)."""
    counted: Counter[str] = Counter()
    real_parse = textual.css.stylesheet.parse

    def counting_parse(scope: str, css: str, read_from: Any, *args: Any, **kwargs: Any) -> Any:
        counted[f"{read_from} {kwargs.get('tie_breaker')} {scope}"] += 1
        return real_parse(scope, css, read_from, *args, **kwargs)

    monkeypatch.setattr(textual.css.stylesheet, "parse", counting_parse)
    return counted


@pytest.fixture
def chat_server() -> Iterator[OpenAITestServer]:
    """A model server that answers ``REPLY`` (change ``reply`` per test)."""
    with OpenAITestServer(reply=REPLY) as server:
        yield server


@pytest.fixture
async def tui_settings(database_url: str, parley_home: Path,
                       chat_server: OpenAITestServer) -> Settings:
    """Settings for the backend under test, chatting with and embedding on the test server,
    on a migrated database (PostgreSQL is never migrated behind the operator's back)."""
    settings = load_settings(overrides=overrides_for(database_url, chat_server))
    await migrate(settings)
    return settings


@pytest.fixture
def held_engine_open(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """``Engine.open`` waits until the test sets the returned event: the app as it is
    before its database has opened."""
    gate = asyncio.Event()
    real_open = Engine.open

    async def held_open(self: Engine) -> None:
        await gate.wait()
        await real_open(self)

    monkeypatch.setattr(Engine, "open", held_open)
    return gate


@pytest.fixture
def docs(tmp_path: Path) -> Path:
    """A folder with two small documents."""
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "paris.md").write_text(PARIS)
    (folder / "berlin.txt").write_text(BERLIN)
    return folder


async def ingest(settings: Settings, *paths: Path) -> None:
    """Index ``paths`` (migrating the database first, as the app would)."""
    async with Engine(settings) as engine:
        await engine.library.run_ingest([str(p) for p in paths])


class RecordingOpener(SourceOpener):
    """A source opener whose runner records the command instead of starting it."""

    def __init__(self) -> None:
        super().__init__(runner=self.record)
        self.commands: list[OpenCommand] = []

    def record(self, command: OpenCommand) -> None:
        self.commands.append(command)


async def settle(pilot: Pilot[Any], rounds: int = 100) -> None:
    """Wait until no worker runs (workers may start others) and the screen caught up."""
    from textual.worker import WorkerCancelled

    app = pilot.app
    for _ in range(rounds):
        try:
            await app.workers.wait_for_complete()
        except WorkerCancelled:
            # A worker the test stopped (Esc, a new chat) ends cancelled: that is settled.
            pass
        await pilot.pause()
        if not any(worker.is_running for worker in app.workers):
            return
    raise AssertionError("workers never settled")


async def wait_until(pilot: Pilot[Any], check: Any, timeout: float = 20.0) -> None:
    """Pause until ``check()`` holds (for timers such as the filter's typing delay)."""
    for _ in range(int(timeout / 0.05)):
        if check():
            return
        await pilot.pause(0.05)
    raise AssertionError("the condition never held")


async def type_text(pilot: Pilot[Any], text: str) -> None:
    """Type ``text`` key by key (about 70 ms a key: keep it short)."""
    await pilot.press(*text)


async def ask(pilot: Pilot[Any], question: str, *, wait: bool = True) -> None:
    """Put ``question`` in the focused prompt, press Enter and (by default) settle."""
    from tui.widgets.prompt import PromptInput

    prompt = pilot.app.screen.query_one(PromptInput)
    prompt.focus()
    prompt.load_text(question)
    await pilot.press("enter")
    if wait:
        await settle(pilot)
