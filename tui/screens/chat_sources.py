"""Sources on the chat screen: the panel follows the selected answer, a ``[n]`` picked in an
answer highlights its source, and a source opens where it was found (the editor at the
line, the viewer at the page). The panel appears when an answer has sources to show.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on

from tui.screens.base import ParleyScreen
from tui.widgets.sources import SourcesPanel
from tui.widgets.transcript import Transcript

if TYPE_CHECKING:
    from engine.types import Citation
    from tui.widgets.message import Answer
    from tui.widgets.prompt import PromptInput


class ChatSources(ParleyScreen):
    """The sources half of the chat screen (``ChatTurns`` and ``ChatScreen`` add the rest)."""

    if TYPE_CHECKING:
        sources: SourcesPanel
        prompt: PromptInput

    def show_sources(self, answer: Answer | None) -> None:
        """List an answer's sources; the panel appears when there is something to show."""
        citations = answer.citations if answer else ()
        unknown = answer.unknown_markers if answer else ()
        self.sources.show(citations, unknown)
        if citations:
            self.sources.display = True

    @on(Transcript.Selected)
    def _message_selected(self, event: Transcript.Selected) -> None:
        if event.view.role == "assistant":
            self.show_sources(event.view.answer)

    @on(Transcript.CitationPicked)
    def _citation_picked(self, event: Transcript.CitationPicked) -> None:
        self.show_sources(event.view.answer)
        if not self.sources.pick(event.number):
            self.notify(f"[{event.number}] names no source in this answer",
                        severity="warning", timeout=3)

    @on(SourcesPanel.OpenRequested)
    def _open_requested(self, event: SourcesPanel.OpenRequested) -> None:
        self.open_citation(event.citation)

    def open_citation(self, citation: Citation) -> None:
        """Open a cited source at its line or page."""
        try:
            command = self.parley.opener.open(self.app, citation.path, line=citation.line_start,
                                              page=citation.page)
        except Exception as exc:
            self.parley.report(exc)
            return
        if command.note:
            self.notify(command.note, timeout=5)

    def action_toggle_sources(self) -> None:
        if self.sources.display and self.sources.has_focus_within:
            self.sources.display = False
            self.prompt.focus()
            return
        self.sources.display = True
        self.sources.source_list.focus()

    def action_open_source(self) -> None:
        citation = self.sources.highlighted
        if citation is None:
            self.notify("No source selected: answers with sources list them here",
                        severity="warning")
            return
        self.open_citation(citation)
