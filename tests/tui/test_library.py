"""The library screen: ingesting with progress, per-file errors, re-index and remove."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import DataTable, Input, OptionList, ProgressBar, Static

from engine import Engine, Settings
from engine.types import IngestProgress
from tests.tui.conftest import ingest, settle
from tui.app import ParleyApp
from tui.screens.library import LibraryScreen
from tui.widgets.ingest import IngestPanel


async def open_library(pilot: object) -> LibraryScreen:
    await pilot.press("f4")  # type: ignore[attr-defined]
    await settle(pilot)  # type: ignore[arg-type]
    screen = pilot.app.screen  # type: ignore[attr-defined]
    assert isinstance(screen, LibraryScreen)
    return screen


async def test_ingest_a_folder_with_live_progress_and_per_file_errors(
        tui_settings: Settings, docs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (docs / "broken.pdf").write_bytes(b"%PDF-1.7 this is not really a PDF")
    seen: list[tuple[int, int, float | None]] = []
    shown = IngestPanel.progress

    def spy(panel: IngestPanel, event: IngestProgress, errors: list[tuple[str, str]]) -> None:
        shown(panel, event, errors)
        bar = panel.query_one(ProgressBar)
        seen.append((event.done, event.total, bar.progress if bar.display else None))

    monkeypatch.setattr(IngestPanel, "progress", spy)
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = await open_library(pilot)
        assert screen.query_one("#documents-empty").display  # the empty state says what to do
        await pilot.press("i")
        ingest_input = screen.query_one("#ingest-path", Input)
        assert app.focused is ingest_input
        ingest_input.value = str(docs)
        await pilot.press("enter")
        await settle(pilot)
        assert seen == [(1, 3, 1), (2, 3, 2), (3, 3, 3)]  # the bar moved after each file
        assert not screen.query_one(ProgressBar).display  # and is hidden when done
        table = screen.query_one("#documents", DataTable)
        assert table.row_count == 3
        by_path = {Path(d.path).name: d for d in screen.documents}
        assert by_path["paris.md"].status == "indexed" and by_path["paris.md"].chunk_count > 0
        assert by_path["broken.pdf"].status == "error" and by_path["broken.pdf"].error
        errors = str(screen.query_one("#ingest-errors", Static).render())
        assert "broken.pdf" in errors
        status = str(screen.query_one("#ingest-status", Static).render())
        assert "3 files" in status and "1 failed" in status
        collections = screen.query_one("#collections", OptionList)
        assert "default" in str(collections.get_option_at_index(1).prompt)


async def test_a_missing_path_is_an_error_and_the_input_is_kept(tui_settings: Settings) -> None:
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = await open_library(pilot)
        screen.query_one("#ingest-path", Input).value = "/no/such/folder"
        screen.query_one("#ingest-path", Input).focus()
        await pilot.press("enter")
        await settle(pilot)
        assert screen.query_one("#ingest-path", Input).value == "/no/such/folder"
        assert any("does not exist" in n.message for n in app._notifications)


async def test_the_last_runs_errors_show_when_the_library_opens(
        tui_settings: Settings, docs: Path) -> None:
    (docs / "broken.pdf").write_bytes(b"not a pdf at all")
    await ingest(tui_settings, docs)
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = await open_library(pilot)
        assert "broken.pdf" in str(screen.query_one("#ingest-errors", Static).render())
        panel = screen.query_one(IngestPanel)
        assert panel.query_one("#errors-title").display


async def test_reindex_and_remove_a_document(tui_settings: Settings, docs: Path) -> None:
    await ingest(tui_settings, docs)
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = await open_library(pilot)
        table = screen.query_one("#documents", DataTable)
        table.focus()
        assert [Path(d.path).name for d in screen.documents] == ["berlin.txt", "paris.md"]
        await pilot.press("r")  # re-read the selected file
        await settle(pilot)
        assert "1 indexed" in str(screen.query_one("#ingest-status", Static).render())
        await pilot.press("d", "y")
        await settle(pilot)
        assert [Path(d.path).name for d in screen.documents] == ["paris.md"]
    async with Engine(tui_settings) as engine:
        assert [Path(d.path).name for d in await engine.library.documents()] == ["paris.md"]


async def test_back_up_now_writes_an_archive_and_shows_when(tui_settings: Settings,
                                                            parley_home: Path) -> None:
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 40)) as pilot:
        await settle(pilot)
        screen = await open_library(pilot)
        status = screen.query_one("#backup-status", Static)
        assert "Last backup: never" in str(status.render())
        await pilot.press("b")
        await pilot.app.workers.wait_for_complete()
        await settle(pilot)
        archives = list((parley_home / "backups").glob("parley-*.parley-backup"))
        assert len(archives) == 1
        assert "Last backup: never" not in str(status.render())
        assert "Last backup:" in str(status.render())
