"""The sources panel: what an answer cited, with file, page, lines and the quoted passage.

Select a source and press Enter (or ``o``) to open it where it was found: in ``$EDITOR`` at
the line, in ``$PAGER``, or in the system viewer for PDFs at the page. A marker that names
no source is listed as such, never attached to another document.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Label, OptionList, Static
from textual.widgets.option_list import Option

from tui.widgets.format import location, one_line, short_path

if TYPE_CHECKING:
    from engine.types import Citation

EMPTY_TEXT = ("No sources for this answer.\n\nAnswers cite the passages they use, like [1]. "
              "Ingest documents in the Library (F4) to give Parley something to cite.")


def citation_prompt(citation: Citation) -> Content:
    """Two to four lines: the marker and location, then the start of the passage."""
    # The panel is narrow: keep the end of the path (the file name) on the first line.
    where = location(short_path(citation.path, 24), citation.page, citation.line_start,
                     citation.line_end)
    snippet = one_line(citation.snippet, 220)
    return Content.assemble((f"[{citation.marker}] ", "bold $text-accent"), (where, "bold"),
                            *_drift_note(citation), "\n", (snippet, "$text-muted"), "\n")


def _drift_note(citation: Citation) -> tuple[str | tuple[str, str], ...]:
    """A line saying what became of the cited passage, when it is no longer as cited."""
    drift = citation.drift
    if drift is None or drift.state == "current":
        return ()
    if drift.state == "moved":
        now = location(short_path(drift.path, 24), drift.page, drift.line_start,
                       drift.line_end)
        return ("\n", (f"moved: now {now}", "$text-warning"))
    if drift.state == "changed":
        return ("\n", ("changed since: the file no longer says this", "bold $text-error"))
    return ("\n", ("missing: the document was removed", "bold $text-error"))


def where_now(citation: Citation) -> Citation:
    """The citation pointing where its passage is now (a moved one opens at its new place)."""
    drift = citation.drift
    if drift is None or drift.state != "moved":
        return citation
    return replace(citation, path=drift.path, page=drift.page, line_start=drift.line_start,
                   line_end=drift.line_end)


class SourceList(OptionList):
    """The cited sources; Enter or ``o`` opens the highlighted one."""

    BINDINGS = [
        Binding("o", "open_source", "Open source", id="sources.open"),
        Binding("y", "copy_source", "Copy passage", id="sources.copy"),
    ]

    def action_open_source(self) -> None:
        self.action_select()

    def action_copy_source(self) -> None:
        panel = next((a for a in self.ancestors if isinstance(a, SourcesPanel)), None)
        citation = panel.highlighted if panel else None
        if citation is not None:
            self.app.copy_to_clipboard(citation.snippet)
            self.notify(f"Copied the passage of [{citation.marker}]", timeout=2)


class SourcesPanel(Vertical):
    """The citations of one answer."""

    class OpenRequested(Message):
        """The user asked to open ``citation`` in a viewer."""

        def __init__(self, citation: Citation) -> None:
            super().__init__()
            self.citation = citation

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.citations: tuple[Citation, ...] = ()
        self.unknown: tuple[int, ...] = ()
        self._built = False

    def compose(self) -> ComposeResult:
        # The panel starts hidden: its widgets are made when first needed (``_build``),
        # not before the chat screen's first frame.
        return ()

    def _build(self) -> None:
        if not self._built:
            self._built = True
            self.mount_all([Label("Sources", classes="panel-title"),
                            SourceList(id="source-list"),
                            Static(EMPTY_TEXT, classes="empty-state", id="sources-empty")])

    @property
    def source_list(self) -> SourceList:
        self._build()
        return self.query_one(SourceList)

    def show(self, citations: Sequence[Citation], unknown: Sequence[int] = ()) -> None:
        """List ``citations`` (and the markers that named no source)."""
        self.citations = tuple(citations)
        self.unknown = tuple(unknown)
        options: list[Option] = [Option(citation_prompt(c), id=f"cite-{c.marker}")
                                 for c in self.citations]
        options.extend(Option(Content.assemble((f"[{n}] ", "bold $text-warning"),
                                               ("names no source in this answer",
                                                "$text-warning")), disabled=True)
                       for n in self.unknown)
        source_list = self.source_list  # built by now
        source_list.set_options(options)
        source_list.display = bool(options)
        self.query_one("#sources-empty").display = not options
        if self.citations:
            source_list.highlighted = 0

    def pick(self, marker: int) -> bool:
        """Highlight the source with ``marker``. False when the answer has no such source."""
        for index, citation in enumerate(self.citations):
            if citation.marker == marker:
                self.source_list.highlighted = index
                return True
        return False

    @property
    def highlighted(self) -> Citation | None:
        """The highlighted citation, if any."""
        index = self.source_list.highlighted
        if index is None or index >= len(self.citations):
            return None
        return self.citations[index]

    @on(OptionList.OptionSelected, "#source-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option_index < len(self.citations):
            self.post_message(self.OpenRequested(where_now(self.citations[event.option_index])))
