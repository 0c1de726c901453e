"""The library screen: collections, their documents with status and errors, and ingestion.

Ingestion runs in a worker that feeds the ingest panel's progress bar, so the app stays
responsive. Re-index (re-read a file), re-embed (a whole collection) and remove run in
workers too; removing asks first. The collections list and the documents table are
``tui.widgets.library``.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from textual import on
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.widget import Widget
from textual.widgets import DataTable, Input, Label, OptionList, Static

from engine.errors import ParleyError
from engine.types import (
    CollectionInfo,
    DocumentInfo,
    IngestProgress,
    IngestResult,
    WatchEvent,
)
from tui.screens.base import ParleyScreen, engine_task
from tui.screens.dialogs import ConfirmDialog
from tui.widgets.format import short_path, size_text, when
from tui.widgets.ingest import IngestPanel
from tui.widgets.library import ALL, DocumentsPane, collection_options

if TYPE_CHECKING:
    from engine.portable.service import LastBackup


class LibraryScreen(ParleyScreen):
    """Collections and documents, and ingestion with live progress."""

    MODE = "library"
    AUTO_FOCUS = "#documents"
    BINDINGS = [
        Binding("i", "focus_ingest", "Ingest a path", id="library.ingest"),
        Binding("r", "reindex_document", "Re-index document", id="library.reindex"),
        Binding("e", "reembed_collection", "Re-embed collection", id="library.reembed"),
        Binding("d,delete", "remove_document", "Remove document", id="library.remove"),
        Binding("g", "refresh", "Refresh", id="library.refresh"),
        Binding("b", "backup_now", "Back up now", id="library.backup"),
        Binding("escape", "stop_ingest", "Stop ingest", show=False, id="library.stop_ingest"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.documents: list[DocumentInfo] = []
        self.collection: str | None = None  # None: all collections
        self.errors: list[tuple[str, str]] = []
        self._run_shown = False  # the last run's summary is shown once, when the screen opens

    def compose_body(self) -> Iterable[Widget]:
        with Horizontal(id="library-main"):
            with Vertical(id="collections-pane"):
                yield Label("Collections", classes="panel-title")
                yield OptionList(id="collections")
                yield Static("Last backup: never", id="backup-status")
                yield Static("", id="watch-status", classes="watch-status")
            yield DocumentsPane(id="documents-pane")
        yield IngestPanel(id="ingest")

    def on_screen_resume(self) -> None:
        self.refresh_library()
        self.show_watch(self.parley.folder_news, self.parley.folder_count)

    def show_watch(self, event: WatchEvent | None, folders: int, *,
                   refresh: bool = False) -> None:
        """The folder watcher's status line; a finished sync reloads the documents."""
        from tui.watch_worker import watch_line

        self.query_one("#watch-status", Static).update(
            Content.styled(watch_line(event, folders), "$text-muted"))
        if refresh:
            self.refresh_library()

    # -- loading ------------------------------------------------------------------------------
    @engine_task("library")
    async def refresh_library(self) -> None:
        """Reload collections and documents (and, the first time, the last run's errors)."""
        engine = await self.engine()
        collections = await engine.library.collections()
        names = {c.name for c in collections}
        if self.collection not in names:
            self.collection = None
        self.documents = await engine.library.documents(self.collection)
        self._show_collections(collections)
        self.query_one(DocumentsPane).show(self.documents, self.collection)
        self._show_backup(await engine.backups.last())
        if not self._run_shown:
            self._run_shown = True
            runs = await engine.library.runs(limit=1)
            if runs:
                self.query_one(IngestPanel).show_run(runs[0])

    def _show_collections(self, collections: list[CollectionInfo]) -> None:
        option_list = self.query_one("#collections", OptionList)
        option_list.set_options(collection_options(collections))
        key = f"c:{self.collection}" if self.collection else ALL
        with contextlib.suppress(Exception):
            option_list.highlighted = option_list.get_option_index(key)

    def _show_backup(self, last: LastBackup | None) -> None:
        text = "Last backup: never" if last is None else \
            f"Last backup: {when(last.at)} · {size_text(last.size)}"
        self.query_one("#backup-status", Static).update(text)

    @on(OptionList.OptionHighlighted, "#collections")
    def _collection_highlighted(self, event: OptionList.OptionHighlighted) -> None:
        chosen = None if event.option.id == ALL else (event.option.id or "")[2:]
        if chosen != self.collection:
            self.collection = chosen
            self.refresh_library()

    def _selected_document(self) -> DocumentInfo | None:
        table = self.query_one("#documents", DataTable)
        if not self.documents or table.cursor_row >= len(self.documents):
            return None
        return self.documents[table.cursor_row]

    # -- actions ------------------------------------------------------------------------------
    def action_refresh(self) -> None:
        self.refresh_library()

    def action_focus_ingest(self) -> None:
        self.query_one("#ingest-path", Input).focus()

    def action_stop_ingest(self) -> None:
        if any(w.group == "ingest" and w.is_running for w in self.workers):
            self.workers.cancel_group(self, "ingest")
            self.notify("Ingestion stopped: files done so far are kept", timeout=3)
        else:
            self.query_one("#documents", DataTable).focus()

    @on(IngestPanel.Requested)
    def _ingest_requested(self, event: IngestPanel.Requested) -> None:
        path = os.path.expanduser(event.path)
        if not Path(path).exists():
            self.notify(f"{event.path} does not exist: check the path", severity="error")
            return
        self.run_ingest([path], event.collection)

    def action_reindex_document(self) -> None:
        doc = self._selected_document()
        if doc is None:
            self.notify("Select a document first", severity="warning")
            return
        self.run_ingest([doc.path], doc.collection, force=True)

    @engine_task("ingest")
    async def run_ingest(self, paths: list[str], collection: str | None,
                         force: bool = False) -> None:
        """Ingest ``paths`` with live progress."""
        panel = self.query_one(IngestPanel)
        panel.started(paths[0])
        self.errors = []
        result: IngestResult | None = None
        note = ""
        try:
            engine = await self.engine()
            events = engine.library.ingest(paths, collection=collection, force=force)
            async with contextlib.aclosing(events) as stream:
                async for event in stream:
                    if isinstance(event, IngestProgress) and event.outcome == "reconnecting":
                        self.notify(event.error or "waiting for the database", title="Database",
                                    severity="warning", timeout=10)
                    elif isinstance(event, IngestProgress):
                        if event.outcome == "error":
                            self.errors.append((event.path, event.error or "failed"))
                        panel.progress(event, self.errors)
                        self.parley.set_note(f"indexing {event.done:,}/{event.total:,}")
                    elif isinstance(event, IngestResult):
                        result = event
        except ParleyError as exc:
            note = f"Failed: {exc.one_line()}"
            raise
        finally:
            self.parley.set_note("")
            panel.finished(result, note or "Stopped: files done so far are kept.")
            self.refresh_library()

    def action_backup_now(self) -> None:
        if any(w.group == "backup" and w.is_running for w in self.workers):
            self.notify("A backup is already running", timeout=3)
            return
        self.backup_now()

    @engine_task("backup")
    async def backup_now(self) -> None:
        """A backup archive in the data folder (what ``parley backup`` writes)."""
        engine = await self.engine()
        self.query_one("#backup-status", Static).update("Backing up…")
        result = await engine.backups.backup_now()
        self.notify(f"Backed up to {short_path(result.path, 60)} ({size_text(result.size)})",
                    timeout=5)
        self._show_backup(await engine.backups.last())

    def action_remove_document(self) -> None:
        doc = self._selected_document()
        if doc is None:
            return

        def answered(sure: bool | None) -> None:
            if sure:
                self.remove_document(doc.id)

        self.app.push_screen(ConfirmDialog(
            "Remove document?", f"{doc.path}\n\nIts chunks, vectors and keyword rows are "
            "deleted. The file itself is not touched.", confirm="Remove"), answered)

    @engine_task("library-edit")
    async def remove_document(self, doc_id: int) -> None:
        """Remove one document from the library."""
        engine = await self.engine()
        removed = await engine.library.remove_documents(doc_id)
        self.notify(f"Removed {removed[0].path if removed else 'the document'}", timeout=3)
        self.refresh_library()

    def action_reembed_collection(self) -> None:
        name = self.collection or (doc.collection if (doc := self._selected_document()) else
                                   None)
        if name is None:
            self.notify("Select a collection first", severity="warning")
            return
        self.reembed(name)

    @engine_task("ingest")
    async def reembed(self, name: str) -> None:
        """Re-embed a collection with the configured embedder."""
        from engine.types import ReindexProgress, ReindexResult

        engine = await self.engine()
        self.notify(f"Re-embedding {name}…", timeout=3)
        try:
            async with contextlib.aclosing(engine.library.reindex(name)) as events:
                async for event in events:
                    if isinstance(event, ReindexProgress):
                        self.parley.set_note(f"embedding {event.done:,}/{event.total:,}")
                    elif isinstance(event, ReindexResult):
                        done = ("already up to date" if event.status == "unchanged"
                                else f"{event.chunks:,} chunks embedded with {event.embedder}")
                        self.notify(f"{name}: {done}", timeout=5)
        finally:
            self.parley.set_note("")
            self.refresh_library()
