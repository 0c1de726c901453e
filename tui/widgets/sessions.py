"""The sessions sidebar: newest first, filtered as you type, loaded a page at a time.

With ten thousand sessions the sidebar still opens at once: the screen loads one page and
asks for the next (``NeedMore``) only when the cursor or the scroll position nears the end.
Typing in the filter searches titles and message text (decrypted in memory by the engine).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from tui.keys import key_hint
from tui.widgets.format import one_line, when

if TYPE_CHECKING:
    from engine.types import HistoryHit, SessionSummary

EMPTY_TEXT = "No sessions yet.\nAsk a question to start one."
# Until the first page arrives: the sidebar never says "no sessions" before it knows.
LOADING_TEXT = "Loading sessions…"
UNAVAILABLE_TEXT = "Sessions unavailable:\nthe database did not open."
NO_MATCH_TEXT = "Nothing matches.\n{clear} clears the filter."


def session_prompt(summary: SessionSummary) -> Content:
    """Title, then date and message count."""
    n = summary.message_count
    meta = f"{when(summary.updated_at)} · {n} message{'s' if n != 1 else ''}"
    return Content.assemble((one_line(summary.title, 60), "bold"), "\n", (meta, "$text-muted"),
                            "\n")


def hit_prompt(hit: HistoryHit) -> Content:
    """Title, then where the filter matched (highlighted)."""
    snippet = Content(hit.snippet).stylize("bold $text-accent", hit.match_start, hit.match_end)
    return Content.assemble((one_line(hit.session_title, 60), "bold"), "\n",
                            snippet.truncate(200) if hit.message_id else
                            Content.styled(f"title · {when(hit.created_at)}", "$text-muted"),
                            "\n")


class SessionList(OptionList):
    """The session options. Asks for more when its end comes near."""

    BINDINGS = [
        Binding("r", "screen.rename_session", "Rename", id="sessions.rename"),
        Binding("d,delete", "screen.delete_session", "Delete", id="sessions.delete"),
        Binding("n", "screen.new_session", "New chat", show=False, id="sessions.new_session"),
    ]
    NEAR_END = 20

    class NeedMore(Message):
        """The cursor or the view is near the last loaded session."""

    def on_focus(self) -> None:
        if self.highlighted is None and self.option_count:
            self.highlighted = 0

    def _check_end(self) -> None:
        index = self.highlighted or 0
        height = self.scrollable_content_region.height
        near_cursor = index >= self.option_count - self.NEAR_END
        near_view = self.scroll_y + 2 * height >= self.virtual_size.height
        if self.option_count and (near_cursor or near_view):
            self.post_message(self.NeedMore())

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        self._check_end()

    def watch_highlighted(self, highlighted: int | None) -> None:
        super().watch_highlighted(highlighted)
        self._check_end()


class Sidebar(Vertical):
    """The filter input and the session list."""

    BINDINGS = [Binding("escape", "clear_filter", "Clear filter", show=False,
                         id="sidebar.clear_filter")]

    class FilterChanged(Message):
        """The filter text changed (already stripped)."""

        def __init__(self, text: str) -> None:
            super().__init__()
            self.text = text

    class SessionChosen(Message):
        """The user chose a session."""

        def __init__(self, session_id: int) -> None:
            super().__init__()
            self.session_id = session_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.loaded = 0  # sessions listed (without a filter)
        self.exhausted = False  # every session is listed
        self.filtering = False

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Filter sessions…", id="session-filter")
        yield SessionList(id="session-list")
        yield Static(LOADING_TEXT, classes="empty-state", id="sessions-empty")

    @property
    def session_list(self) -> SessionList:
        return self.query_one(SessionList)

    def _no_match(self) -> str:
        return NO_MATCH_TEXT.format(clear=key_hint(self.app, "sidebar.clear_filter", "escape"))

    def _show_empty(self, text: str | None) -> None:
        empty = self.query_one("#sessions-empty", Static)
        empty.display = text is not None
        self.session_list.display = text is None
        if text is not None:
            empty.update(text)

    # -- content, set by the screen ----------------------------------------------------------
    def unavailable(self) -> None:
        """The sessions cannot be listed (the database did not open)."""
        self._show_empty(UNAVAILABLE_TEXT)

    def reset(self, page: Sequence[SessionSummary], *, exhausted: bool,
              current: int | None = None) -> None:
        """Show the first page of sessions (no filter)."""
        self.filtering = False
        self.loaded = 0
        self.session_list.clear_options()
        self.append(page, exhausted=exhausted)
        if current is not None:
            self.highlight(current)
        self._show_empty(EMPTY_TEXT if not page else None)

    def append(self, page: Sequence[SessionSummary], *, exhausted: bool) -> None:
        """Add the next page of sessions."""
        self.exhausted = exhausted
        known = {o.id for o in self.session_list.options}
        self.session_list.add_options(Option(session_prompt(s), id=str(s.id))
                                      for s in page if str(s.id) not in known)
        self.loaded += len(page)

    def show_hits(self, hits: Sequence[HistoryHit]) -> None:
        """Show the sessions a filter matched (one line per session, its first hit)."""
        self.filtering = True
        seen: set[int] = set()
        options = []
        for hit in hits:
            if hit.session_id not in seen:
                seen.add(hit.session_id)
                options.append(Option(hit_prompt(hit), id=str(hit.session_id)))
        self.session_list.set_options(options)
        if options:
            self.session_list.highlighted = 0
        self._show_empty(self._no_match() if not options else None)

    def upsert_top(self, summary: SessionSummary) -> None:
        """Show ``summary`` first (a session just created or answered)."""
        if self.filtering:
            return
        session_list = self.session_list
        key = str(summary.id)
        if any(o.id == key for o in session_list.options):
            session_list.remove_option(key)
        else:
            self.loaded += 1
        options = [Option(session_prompt(summary), id=key), *session_list.options]
        session_list.set_options(options)
        session_list.highlighted = 0
        self._show_empty(None)

    def remove(self, session_id: int) -> None:
        """Drop a deleted session."""
        key = str(session_id)
        if any(o.id == key for o in self.session_list.options):
            self.session_list.remove_option(key)
            self.loaded = max(0, self.loaded - 1)
        if not self.session_list.option_count:
            self._show_empty(self._no_match() if self.filtering else EMPTY_TEXT)

    def highlight(self, session_id: int) -> None:
        """Move the cursor to ``session_id`` if it is listed."""
        try:
            self.session_list.highlighted = self.session_list.get_option_index(str(session_id))
        except Exception:  # OptionDoesNotExist: not loaded yet, nothing to highlight
            pass

    @property
    def highlighted_id(self) -> int | None:
        """The session under the cursor."""
        option = self.session_list.highlighted_option
        return int(option.id) if option is not None and option.id else None

    # -- events -------------------------------------------------------------------------------
    @on(Input.Changed, "#session-filter")
    def _filter(self, event: Input.Changed) -> None:
        event.stop()
        self.post_message(self.FilterChanged(event.value.strip()))

    @on(Input.Submitted, "#session-filter")
    def _to_list(self, event: Input.Submitted) -> None:
        event.stop()
        self.session_list.focus()

    @on(OptionList.OptionSelected, "#session-list")
    def _chosen(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if event.option.id:
            self.post_message(self.SessionChosen(int(event.option.id)))

    def action_clear_filter(self) -> None:
        filter_input = self.query_one("#session-filter", Input)
        if filter_input.value:
            filter_input.value = ""
            filter_input.focus()
        else:
            self.screen.focus_next()
