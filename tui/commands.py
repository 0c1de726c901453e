"""Command palette entries (Ctrl+P) for Parley's main actions.

Each entry is an app action string; ``goto('mode', 'action')`` switches to a section and
runs one of its screen's actions, so an entry works from anywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial

from textual.command import DiscoveryHit, Hit, Hits, Provider


@dataclass(frozen=True, slots=True)
class PaletteCommand:
    """One palette entry."""

    title: str
    help: str
    action: str


PALETTE: tuple[PaletteCommand, ...] = (
    PaletteCommand("New chat", "Start a new chat session", "goto('chat', 'new_session')"),
    PaletteCommand("Search documents", "Offline hybrid search of your library",
                   "goto('search', 'focus_query')"),
    PaletteCommand("Library", "Collections, documents and their status",
                   "switch_mode('library')"),
    PaletteCommand("Ingest a folder", "Add files or a folder to the library",
                   "goto('library', 'focus_ingest')"),
    PaletteCommand("Usage and budget", "Tokens and cost by day and by model",
                   "switch_mode('usage')"),
    PaletteCommand("Toggle sidebar", "Show or hide the sessions sidebar",
                   "goto('chat', 'toggle_sidebar')"),
    PaletteCommand("Find session", "Filter sessions by title or content",
                   "goto('chat', 'find_session')"),
    PaletteCommand("Regenerate answer", "Answer the last question again",
                   "goto('chat', 'regenerate')"),
    PaletteCommand("Edit last question", "Change the last question and ask it again",
                   "goto('chat', 'edit_last')"),
    PaletteCommand("Rename session", "Give the current session a new title",
                   "goto('chat', 'rename_session')"),
    PaletteCommand("Delete session", "Delete the current session for good",
                   "goto('chat', 'delete_session')"),
    PaletteCommand("Open source", "Open the selected source at its line or page",
                   "goto('chat', 'open_source')"),
    PaletteCommand("Chat settings", "Model, system prompt, collections, RAG and parameters "
                   "of this chat", "goto('chat', 'session_settings')"),
    PaletteCommand("Change model", "Pick another model for this chat",
                   "goto('chat', 'session_settings')"),
    PaletteCommand("Attach a file", "Send a file with the next question as a citable source",
                   "goto('chat', 'attach_file')"),
    PaletteCommand("New chat from a persona", "Start a chat set up by a persona",
                   "goto('chat', 'new_session')"),
    PaletteCommand("Switch theme", "Choose another color theme", "change_theme"),
    PaletteCommand("Keys and help", "Every key binding of every screen", "help"),
)


class ParleyCommands(Provider):
    """Parley's entries in the command palette."""

    async def discover(self) -> Hits:
        for command in PALETTE:
            yield DiscoveryHit(command.title, partial(self.app.run_action, command.action),
                               help=command.help)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for command in PALETTE:
            score = matcher.match(command.title)
            if score > 0:
                yield Hit(score, matcher.highlight(command.title),
                          partial(self.app.run_action, command.action), text=command.title,
                          help=command.help)
