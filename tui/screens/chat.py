"""The chat screen: sessions sidebar, transcript, prompt and sources panel.

The screen composes the widgets, handles their messages and runs the engine calls in
workers. Asking, regenerating and editing stream through ``tui.screens.chat_turns``.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import on
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Input, Static

from engine.errors import ParleyError
from tui.screens.base import engine_task
from tui.screens.chat_setup import ChatSetup
from tui.screens.chat_turns import ChatTurns
from tui.widgets.prompt import PromptInput
from tui.widgets.sessions import SessionList, Sidebar, session_prompt
from tui.widgets.sources import SourcesPanel
from tui.widgets.transcript import Transcript

PAGE = 100
FILTER_DELAY = 0.25  # seconds of quiet typing before the filter searches


class ChatScreen(ChatSetup, ChatTurns):
    """Chat with the configured model, grounded in the library."""

    MODE = "chat"
    AUTO_FOCUS = "#prompt"

    BINDINGS = [
        Binding("ctrl+n", "new_session", "New chat", id="chat.new_session"),
        Binding("escape", "escape", "Stop / back", show=False, id="chat.stop"),
        Binding("ctrl+r", "regenerate", "Regenerate", id="chat.regenerate"),
        Binding("ctrl+l", "edit_last", "Edit last", id="chat.edit_last"),
        Binding("ctrl+o", "open_source", "Open source", show=False, id="chat.open_source"),
        Binding("ctrl+s", "toggle_sources", "Sources", id="chat.toggle_sources"),
        Binding("ctrl+b", "toggle_sidebar", "Sidebar", id="chat.toggle_sidebar"),
        Binding("ctrl+f", "find_session", "Find session", show=False, id="chat.find_session"),
        Binding("ctrl+t", "focus_transcript", "Messages", show=False,
                id="chat.focus_transcript"),
        Binding("ctrl+g", "session_settings", "Settings", id="chat.session_settings"),
        Binding("f8", "attach_file", "Attach", id="chat.attach_file"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self._filter_timer: Timer | None = None
        self.init_setup()

    def compose_body(self) -> Iterable[Widget]:
        with Horizontal(id="chat-main"):
            yield Sidebar(id="sidebar")
            with Vertical(id="conversation"):
                yield Static("", id="chat-header")
                yield Transcript(id="transcript")
                yield Static("", id="prompt-note")
                yield Horizontal(id="attachments")
                yield PromptInput(id="prompt")
            yield SourcesPanel(id="sources")

    def on_mount(self) -> None:
        self.query_one("#sidebar").display = self.parley.settings.ui.show_sidebar
        self.sources.display = False
        self.query_one("#prompt-note").display = False
        self.query_one("#attachments").display = False
        self.run_worker(self.transcript.show(()), group="transcript")
        self.load_sessions()
        self.refresh_setup()

    # -- widgets --------------------------------------------------------------------------------
    @property
    def sidebar(self) -> Sidebar:
        return self.query_one(Sidebar)

    @property
    def transcript(self) -> Transcript:
        return self.query_one(Transcript)

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def sources(self) -> SourcesPanel:
        return self.query_one(SourcesPanel)

    # -- sessions -------------------------------------------------------------------------------
    @engine_task("sessions")
    async def load_sessions(self) -> None:
        """The first page of the sidebar."""
        try:
            engine = await self.engine()
        except ParleyError:
            self.sidebar.unavailable()
            raise
        page = await engine.sessions.list(limit=PAGE + 1)
        self.sidebar.reset(page[:PAGE], exhausted=len(page) <= PAGE, current=self.session_id)

    @engine_task("sessions-more")
    async def load_more_sessions(self) -> None:
        """The next page of the sidebar."""
        sidebar = self.sidebar
        if sidebar.exhausted or sidebar.filtering:
            return
        engine = await self.engine()
        page = await engine.sessions.list(limit=PAGE + 1, offset=sidebar.loaded)
        sidebar.append(page[:PAGE], exhausted=len(page) <= PAGE)

    @engine_task("sessions")
    async def filter_sessions(self, text: str) -> None:
        """Sessions whose title or messages contain ``text``."""
        engine = await self.engine()
        found = await engine.sessions.search(text, limit=200)
        self.sidebar.show_hits(found.hits)

    @on(SessionList.NeedMore)
    def _need_more(self) -> None:
        if not self.sidebar.exhausted and not self.sidebar.filtering:
            self.load_more_sessions()

    @on(Sidebar.FilterChanged)
    def _filter_changed(self, event: Sidebar.FilterChanged) -> None:
        if self._filter_timer is not None:
            self._filter_timer.stop()
        if not event.text:
            self.load_sessions()
            return
        self._filter_timer = self.set_timer(FILTER_DELAY,
                                            lambda: self.filter_sessions(event.text))

    @on(Sidebar.SessionChosen)
    def _session_chosen(self, event: Sidebar.SessionChosen) -> None:
        self.open_session(event.session_id)
        self.prompt.focus()

    @engine_task("session")
    async def open_session(self, session_id: int) -> None:
        """Show a stored session (its active branch)."""
        self.stop_turn()
        self.shown += 1
        await self.show_session(await self.engine(), session_id)
        self.refresh_setup()

    def action_new_session(self) -> None:
        self.new_chat()
        self.offer_personas()

    def new_chat(self) -> None:
        """An empty chat (its session is created by the first question)."""
        self.stop_turn()
        self.shown += 1
        self.session_id = None
        self.end_edit()
        self.sidebar.session_list.highlighted = None
        self.run_worker(self.transcript.show(()), group="transcript")
        self.show_sources(None)
        self.parley.set_model(None, None, 0, False)
        self.prompt.focus()
        self.refresh_setup()

    def _target_session(self) -> int | None:
        if self.sidebar.has_focus_within and self.sidebar.highlighted_id is not None:
            return self.sidebar.highlighted_id
        return self.session_id if self.session_id is not None else self.sidebar.highlighted_id

    def action_rename_session(self) -> None:
        session_id = self._target_session()
        if session_id is None:
            self.notify("No session to rename yet", severity="warning")
            return
        option = next((o for o in self.sidebar.session_list.options if o.id == str(session_id)),
                      None)
        current = str(option.prompt).split("\n", 1)[0] if option else ""

        def renamed(title: str | None) -> None:
            if title:
                self.rename_session(session_id, title)

        from tui.screens.dialogs import TextDialog

        self.app.push_screen(TextDialog("Rename session", current, placeholder="Session title"),
                             renamed)

    @engine_task("session-edit")
    async def rename_session(self, session_id: int, title: str) -> None:
        """Give a session a new title."""
        engine = await self.engine()
        summary = await engine.sessions.rename(session_id, title)
        if any(o.id == str(session_id) for o in self.sidebar.session_list.options):
            self.sidebar.session_list.replace_option_prompt(str(session_id),
                                                            session_prompt(summary))
        self.notify(f"Renamed to “{summary.title}”", timeout=3)

    def action_delete_session(self) -> None:
        session_id = self._target_session()
        if session_id is None:
            self.notify("No session to delete", severity="warning")
            return

        def answered(sure: bool | None) -> None:
            if sure:
                self.delete_session(session_id)

        from tui.screens.dialogs import ConfirmDialog

        self.app.push_screen(ConfirmDialog(
            "Delete session?", "The session, its messages and citations are deleted for "
            "good. Usage records keep their counts."), answered)

    @engine_task("session-edit")
    async def delete_session(self, session_id: int) -> None:
        """Delete a session for good."""
        engine = await self.engine()
        if session_id == self.session_id:
            self.stop_turn()
        gone = await engine.sessions.delete(session_id)
        self.sidebar.remove(session_id)
        if session_id == self.session_id:
            self.new_chat()
        self.notify(f"Deleted the session and its {gone.messages} messages", timeout=3)

    # -- focus and panels ---------------------------------------------------------------------
    def action_toggle_sidebar(self) -> None:
        sidebar = self.query_one("#sidebar")
        sidebar.display = not sidebar.display
        if not sidebar.display and sidebar.has_focus_within:
            self.prompt.focus()

    def action_find_session(self) -> None:
        self.query_one("#sidebar").display = True
        self.query_one("#session-filter", Input).focus()

    def action_focus_transcript(self) -> None:
        self.transcript.focus()

    def insert_context(self, text: str) -> None:
        """Put quoted passages before whatever the prompt holds, ready for a question."""
        self.prompt.restore(text + self.prompt.text)
        self.prompt.focus()

    def action_escape(self) -> None:
        if self.streaming:
            self.stop_turn(notify=True)
        elif self.editing:
            self.end_edit(restore=True)
        else:
            self.prompt.focus()
