"""The sources panel says when a cited passage moved since the answer was written."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from textual.pilot import Pilot

from engine import Engine
from tests.support.openai_server import OpenAITestServer
from tests.tui.test_snapshots import (  # noqa: F401  (fixtures)
    SIZE,
    before,
    home,
    make_settings,
    seed,
    server,
)
from tui.app import ParleyApp
from tui.widgets.sources import SourcesPanel, where_now


def _move_the_source(settings: Any, home: Path) -> None:
    paris = home / "docs" / "paris.md"
    paris.write_text("A preface.\n\nAnother line.\n\n" + paris.read_text())

    async def reingest() -> None:
        async with Engine(settings) as engine:
            await engine.library.run_ingest([str(home / "docs")])

    asyncio.run(reingest())


def test_sources_panel_marks_a_moved_citation(snap_compare: Any, home: Path,
                                              server: OpenAITestServer) -> None:
    settings = make_settings(home, server)
    asyncio.run(seed(settings, home, chat=True))
    _move_the_source(settings, home)

    def open_first(pilot: Pilot[Any]) -> None:
        pilot.app.screen.query_one("#session-list").highlighted = 0
        pilot.app.screen.open_session(1)  # type: ignore[attr-defined]

    async def check(pilot: Pilot[Any]) -> None:
        open_first(pilot)
        await pilot.pause()
        panel = pilot.app.screen.query_one(SourcesPanel)
        cited = panel.citations[0]
        assert cited.drift is not None and cited.drift.state == "moved"
        # opening it goes to where the passage is now
        assert where_now(cited).line_start == cited.drift.line_start == cited.line_start + 4

    assert snap_compare(ParleyApp(settings), terminal_size=SIZE, run_before=before(then=check))
