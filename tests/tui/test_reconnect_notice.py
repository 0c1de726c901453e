"""The app while its PostgreSQL server is down and after it is back: a notice, never an
error dialog, and the next action works (a server of the test's own, restarted)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from textual.widgets import Input

from engine import load_settings
from tests.conftest import migrate
from tests.support.openai_server import OpenAITestServer
from tests.support.pg_restart import RestartableServer
from tests.tui.conftest import ingest, overrides_for, settle, wait_until
from tui.app import ParleyApp
from tui.screens.dialogs import ErrorDialog
from tui.screens.search import SearchScreen


async def test_a_stopped_server_is_a_notice_and_the_app_recovers(
        own_server: RestartableServer, parley_home: Path, chat_server: OpenAITestServer,
        docs: Path) -> None:
    url = await own_server.create_database()
    settings = load_settings(overrides=overrides_for(url, chat_server))
    await migrate(settings)
    await ingest(settings, docs)
    app = ParleyApp(settings)
    notices: list[dict[str, Any]] = []
    shown = app.notify

    def recording(message: str, **kwargs: Any) -> None:
        notices.append({"message": message, **kwargs})
        shown(message, **kwargs)

    app.notify = recording  # type: ignore[method-assign]
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        await pilot.press("f3")
        await settle(pilot)
        screen = app.screen
        assert isinstance(screen, SearchScreen)

        async def search(query: str) -> None:
            screen.query_one("#query", Input).value = query
            screen.query_one("#query", Input).focus()
            await pilot.press("enter")
            await settle(pilot)

        await search("capital")
        assert {Path(h.path).name for h in screen.hits} == {"paris.md", "berlin.txt"}

        await asyncio.to_thread(own_server.stop)
        try:
            await search("museums")
            await wait_until(pilot, lambda: any(n.get("title") == "Database" for n in notices),
                             timeout=120)
        finally:
            await asyncio.to_thread(own_server.start)
        notice = next(n for n in notices if n.get("title") == "Database")
        assert notice["severity"] == "warning"
        assert "lost the connection to the database" in notice["message"]
        assert not any(isinstance(s, ErrorDialog) for s in app.screen_stack)

        await search("Louvre")  # the server is back: the next search reconnects
        assert [Path(h.path).name for h in screen.hits][:1] == ["paris.md"]
        assert not any(isinstance(s, ErrorDialog) for s in app.screen_stack)
