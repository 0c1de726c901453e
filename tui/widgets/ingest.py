"""The ingest panel of the library: a path, a collection, live progress and per-file errors.

The screen runs the ingestion in a worker and feeds this panel its events; the panel only
shows them, so the app stays responsive while thousands of files are indexed.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual import on
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Button, Input, Label, ProgressBar, Static

from engine.types import IngestProgress, IngestResult, IngestRunInfo
from tui.widgets.format import home_path, one_line, short_path, when

IDLE_TEXT = "Type a file or folder path and press Enter. Unchanged files are skipped."


def errors_content(errors: Sequence[tuple[str, str]], limit: int = 200) -> Content:
    """One line per failed file: the path, then why."""
    lines = [Content.assemble(("✖ ", "$text-error"), (short_path(path or "(run)", 60), "bold"),
                              "  ", (one_line(reason, 160), "$text-muted"))
             for path, reason in errors[:limit]]
    if len(errors) > limit:
        lines.append(Content.styled(f"… and {len(errors) - limit:,} more", "$text-muted"))
    return Content("\n").join(lines)


class IngestPanel(Vertical):
    """Ingest a path into a collection and watch it go."""

    class Requested(Message):
        """The user asked to ingest ``path`` into ``collection`` (None: the default)."""

        def __init__(self, path: str, collection: str | None) -> None:
            super().__init__()
            self.path = path
            self.collection = collection

    def compose(self) -> ComposeResult:
        yield Label("Ingest", classes="panel-title")
        with Horizontal(id="ingest-row"):
            yield Input(placeholder="Path to a file or folder, e.g. ~/notes", id="ingest-path")
            yield Input(placeholder="collection (default)", id="ingest-collection")
            yield Button("Ingest", id="ingest-button", variant="primary")
        with Horizontal(id="ingest-progress-row"):
            yield ProgressBar(id="ingest-progress", show_eta=False)
            yield Static(IDLE_TEXT, id="ingest-status")
        yield Label("", id="errors-title", classes="panel-subtitle")
        yield Static("", id="ingest-errors")

    def on_mount(self) -> None:
        self.query_one("#ingest-progress").display = False
        self.query_one("#errors-title").display = False

    def _request(self) -> None:
        path = self.query_one("#ingest-path", Input).value.strip()
        collection = self.query_one("#ingest-collection", Input).value.strip() or None
        if path:
            self.post_message(self.Requested(path, collection))

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        event.stop()
        self._request()

    @on(Button.Pressed, "#ingest-button")
    def _pressed(self, event: Button.Pressed) -> None:
        event.stop()
        self._request()

    # -- shown by the screen ------------------------------------------------------------------
    def started(self, path: str) -> None:
        """A run started."""
        bar = self.query_one("#ingest-progress", ProgressBar)
        bar.update(total=None, progress=0)
        bar.display = True
        self.query_one("#ingest-button", Button).disabled = True
        self._status(f"Looking for files in {home_path(path)}… (Esc stops)")
        self.show_errors(())

    def progress(self, event: IngestProgress, errors: Sequence[tuple[str, str]]) -> None:
        """A file was done."""
        self.query_one("#ingest-progress", ProgressBar).update(total=max(event.total, 1),
                                                                progress=event.done)
        self._status(f"{event.done:,} / {event.total:,}  {event.outcome}  "
                     f"{short_path(event.path, 60)}")
        if event.outcome == "error":
            self.show_errors(errors, "Errors so far")

    def finished(self, result: IngestResult | None, note: str = "") -> None:
        """The run ended (``result`` None when it stopped before its result)."""
        self.query_one("#ingest-progress").display = False
        self.query_one("#ingest-button", Button).disabled = False
        if result is None:
            self._status(note or "Stopped.")
            return
        self._status(
            f"{result.status.capitalize()}: {result.files_seen:,} files, {result.indexed:,} "
            f"indexed, {result.skipped:,} unchanged, {result.failed:,} failed, "
            f"{result.chunks:,} chunks.")
        self.show_errors(result.errors, "Errors of the last run")

    def show_run(self, run: IngestRunInfo) -> None:
        """Show the last recorded run (when the screen opens)."""
        self._status(f"Last run {when(run.started_at)}: {run.status}, {run.indexed:,} indexed, "
                     f"{run.skipped:,} unchanged, {run.failed:,} failed.")
        self.show_errors(run.errors, "Errors of the last run")

    def show_errors(self, errors: Sequence[tuple[str, str]], title: str = "") -> None:
        """List per-file errors (none hides the list)."""
        label = self.query_one("#errors-title", Label)
        label.display = bool(errors)
        label.update(f"{title} ({len(errors):,})")
        self.query_one("#ingest-errors", Static).update(errors_content(errors))

    def _status(self, text: str) -> None:
        self.query_one("#ingest-status", Static).update(text)
