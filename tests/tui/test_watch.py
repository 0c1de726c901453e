"""While the app is open it keeps the watched folders in sync (a real watcher)."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from textual.widgets import Static

from engine import Engine, Settings
from tui.app import ParleyApp

DEADLINE = 240.0


async def wait_until(pilot: object, check: object, timeout: float) -> None:
    """Poll with the event loop free (the watcher worker never settles)."""
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError("the condition never held")
        await asyncio.sleep(0.05)


async def test_the_app_syncs_watched_folders_and_the_library_says_so(
        tui_settings: Settings, docs: Path) -> None:
    async with Engine(tui_settings) as engine:
        await engine.watched.add(docs)
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        # the catch-up run indexes what is there
        await wait_until(pilot, lambda: app.folder_news is not None
                         and app.folder_news.state == "synced", DEADLINE)
        await pilot.press("f4")
        await wait_until(pilot, lambda: type(app.screen).__name__ == "LibraryScreen", DEADLINE)
        screen = app.screen
        status = screen.query_one("#watch-status", Static)
        await wait_until(pilot, lambda: len(screen.documents) == 2, DEADLINE)
        assert "Watching 1 folder" in str(status.render())
        (docs / "rome.md").write_text("# Rome\n\nRome is the capital of Italy.\n")
        await wait_until(pilot, lambda: any(Path(d.path).name == "rome.md"
                                            for d in screen.documents), DEADLINE)
        assert "last change" in str(status.render()) and "1 indexed" in str(status.render())
        hits = await app.engine.retrieval.search("capital of Italy", k=1)  # type: ignore[union-attr]
        assert Path(hits[0].path).name == "rome.md"
