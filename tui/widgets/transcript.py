"""The transcript: the messages of a session, newest at the bottom.

A session of thousands of messages opens at once: only the last ``WINDOW`` messages are
mounted, and earlier ones are mounted a window at a time when the view reaches the top.
Focus the transcript (Shift+Tab from the prompt) to walk through messages with the arrow
keys, copy one (``c``) or its code blocks (``b``), and pick a cited source by number.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from textual import on
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message as TextualMessage
from textual.reactive import reactive
from textual.widgets import Static

from tui.keys import key_hint
from tui.widgets.message import Answer, MessageView

if TYPE_CHECKING:
    from textual.widgets import Markdown

    from engine.types import Message, ToolRunInfo

EMPTY_TEXT = ("Ask anything below. Answers cite your documents with markers like [1]: "
              "add documents in the Library ({library}), press {help} for every key.")


def view_for(message: Message, runs: Sequence[ToolRunInfo] = ()) -> MessageView:
    """The view of a stored message (an answer with the lines of its tool calls)."""
    answer = Answer(status=message.status, model=message.model, error=message.error,
                    citations=message.citations)
    from tui.widgets.tool_line import ToolLine  # only answers that used tools need it

    lines = [ToolLine(r.call_id, r.server, r.tool, r.arguments, status=r.status,
                      decision=r.decision, result=(r.result if r.status == "ok" else r.error)
                      or "", chars=r.result_chars, duration_ms=r.duration_ms,
                      truncated=r.truncated) for r in runs]
    return MessageView(message.role, message.content, message_id=message.id, answer=answer,
                       alternatives=message.alternatives, tool_lines=lines,
                       attached=tuple(a.path.rsplit("/", 1)[-1] for a in message.attachments))


class Transcript(VerticalScroll):
    """The messages of the current session, with a keyboard cursor when focused."""

    WINDOW = 20
    can_focus = True

    BINDINGS = [
        Binding("up,k", "select(-1)", "Previous message", show=False, id="transcript.previous"),
        Binding("down,j", "select(1)", "Next message", show=False, id="transcript.next"),
        Binding("home", "select_first", "First message", show=False, id="transcript.first"),
        Binding("end", "select_last", "Last message", show=False, id="transcript.last"),
        Binding("left,h", "alternative(-1)", "Previous version", show=False,
                id="transcript.previous_version"),
        Binding("right,l", "alternative(1)", "Next version", show=False,
                id="transcript.next_version"),
        Binding("c", "copy_message", "Copy message", id="transcript.copy_message"),
        Binding("b", "copy_code", "Copy code block", id="transcript.copy_code"),
        *[Binding(str(n), f"cite({n})", "Select source N", show=False, id=f"transcript.source_{n}")
          for n in range(1, 10)],
    ]

    selected: reactive[int | None] = reactive(None, init=False)

    class Selected(TextualMessage):
        """A message was selected with the cursor."""

        def __init__(self, view: MessageView) -> None:
            super().__init__()
            self.view = view

    class CitationPicked(TextualMessage):
        """Source ``number`` of ``view``'s answer was picked (clicked, or its digit typed)."""

        def __init__(self, view: MessageView, number: int) -> None:
            super().__init__()
            self.view = view
            self.number = number

    class BranchRequested(TextualMessage):
        """Show the version ``message_id`` of ``view`` (another branch of the session)."""

        def __init__(self, view: MessageView, message_id: int) -> None:
            super().__init__()
            self.view = view
            self.message_id = message_id

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self._messages: list[Message] = []
        self._runs: Mapping[int, Sequence[ToolRunInfo]] = {}
        self._first_mounted = 0  # index in _messages of the first mounted message

    # -- content ------------------------------------------------------------------------------
    @property
    def views(self) -> list[MessageView]:
        """The mounted message views, oldest first."""
        return list(self.query_children(MessageView))

    async def show(self, messages: Sequence[Message],
                   runs: Mapping[int, Sequence[ToolRunInfo]] | None = None) -> None:
        """Replace the content with ``messages`` (the last window of them is mounted);
        ``runs``: the tool runs of answers, by message id."""
        self._messages = [m for m in messages if m.role != "system"]
        self._runs = runs or {}
        self._first_mounted = max(0, len(self._messages) - self.WINDOW)
        self.selected = None
        with self.app.batch_update():
            await self.remove_children()
            if not self._messages:
                await self.mount(Static(EMPTY_TEXT.format(
                    library=key_hint(self.app, "app.library", "f4"),
                    help=key_hint(self.app, "app.help", "f1")), id="transcript-empty"))
                return
            if self._first_mounted:
                await self.mount(Static(self._earlier_text(), id="transcript-earlier"))
            await self.mount_all([view_for(m, self._runs.get(m.id, ()))
                                  for m in self._messages[self._first_mounted:]])
        self.scroll_end(animate=False, immediate=True)
        self.anchor()

    def _earlier_text(self) -> str:
        n = self._first_mounted
        return f"▲ {n:,} earlier message{'s' if n != 1 else ''}: scroll up or press Home"

    async def load_earlier(self) -> bool:
        """Mount the window of messages before the first mounted one. False if none."""
        if not self._first_mounted:
            return False
        start = max(0, self._first_mounted - self.WINDOW)
        batch = [view_for(m, self._runs.get(m.id, ()))
                 for m in self._messages[start:self._first_mounted]]
        anchor_view = self.views[0] if self.views else None
        self._first_mounted = start
        earlier = self.query_one("#transcript-earlier", Static)
        await self.mount_all(batch, after=earlier)
        if start:
            earlier.update(self._earlier_text())
        else:
            await earlier.remove()
        if anchor_view is not None:
            self.call_after_refresh(self.scroll_to_widget, anchor_view, top=True, animate=False)
        if self.selected is not None:
            self.selected += len(batch)
        return True

    async def add(self, view: MessageView) -> MessageView:
        """Append a message view (a question, or an answer about to stream)."""
        for empty in self.query("#transcript-empty"):
            await empty.remove()
        await self.mount(view)
        self.anchor()
        self.scroll_end(animate=False)
        return view

    def adopt_tail(self, messages: Sequence[Message]) -> None:
        """Give the newest views the ids and versions of the newest stored ``messages``
        (after a turn whose question or answer was not stored yet when it was shown)."""
        shown = [m for m in messages if m.role != "system"]
        for view, message in zip(reversed(self.views), reversed(shown[-2:]), strict=False):
            if view.role == message.role:
                view.message_id, view.alternatives = message.id, message.alternatives
                view.refresh_header()

    async def select_message(self, message_id: int) -> None:
        """Put the cursor on the message ``message_id``, mounting earlier ones if needed."""
        while True:
            for index, view in enumerate(self.views):
                if view.message_id == message_id:
                    self.selected = index
                    return
            if not await self.load_earlier():
                return

    def last_view(self, role: str) -> MessageView | None:
        """The newest mounted message of ``role``."""
        for view in reversed(self.views):
            if view.role == role:
                return view
        return None

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if new_value <= 0 and self._first_mounted and old_value > 0:
            self.run_worker(self.load_earlier(), group="transcript-earlier", exclusive=True)

    # -- cursor -------------------------------------------------------------------------------
    def on_focus(self) -> None:
        if self.selected is None and self.views:
            self.selected = len(self.views) - 1

    def watch_selected(self, old: int | None, new: int | None) -> None:
        views = self.views
        if old is not None and old < len(views):
            views[old].remove_class("-selected")
        if new is not None and new < len(views):
            views[new].add_class("-selected")
            self.release_anchor()
            self.scroll_to_widget(views[new], animate=False)
            self.post_message(self.Selected(views[new]))

    def selected_view(self) -> MessageView | None:
        """The message under the cursor (the newest answer when there is no cursor)."""
        views = self.views
        if self.selected is not None and self.selected < len(views):
            return views[self.selected]
        return self.last_view("assistant")

    async def action_select(self, step: int) -> None:
        count = len(self.views)
        if not count:
            return
        current = self.selected if self.selected is not None else count
        target = current + step
        if target < 0:
            if await self.load_earlier():
                self.call_after_refresh(self.action_select, step)
            return
        self.selected = min(max(target, 0), count - 1)

    async def action_select_first(self) -> None:
        while await self.load_earlier():
            pass
        if self.views:
            self.selected = 0

    def action_select_last(self) -> None:
        if self.views:
            self.selected = len(self.views) - 1

    def action_alternative(self, step: int) -> None:
        view = self.selected_view()
        if view is None or view.message_id not in view.alternatives:
            regenerate = key_hint(self.app, "chat.regenerate", "ctrl+r")
            edit = key_hint(self.app, "chat.edit_last", "ctrl+l")
            self.notify(f"This message has no other version: regenerate ({regenerate}) or edit "
                        f"({edit}) the last turn to make one", severity="warning", timeout=3)
            return
        versions = view.alternatives
        target = versions[(versions.index(view.message_id) + step) % len(versions)]
        self.post_message(self.BranchRequested(view, target))

    def action_copy_message(self) -> None:
        view = self.selected_view()
        if view is None:
            return
        self.app.copy_to_clipboard(view.content)
        self.notify(f"Copied the message ({len(view.content):,} characters)", timeout=2)

    def action_copy_code(self) -> None:
        view = self.selected_view()
        found = view.next_code_block() if view else None
        if found is None:
            self.notify("This message has no code block", severity="warning", timeout=2)
            return
        code, number, total = found
        self.app.copy_to_clipboard(code)
        more = " (press b again for the next)" if total > 1 else ""
        self.notify(f"Copied code block {number} of {total}{more}", timeout=3)

    def action_cite(self, number: int) -> None:
        view = self.selected_view()
        if view is not None:
            self.post_message(self.CitationPicked(view, number))

    # Named rather than ``@on(Markdown.LinkClicked)``: the Markdown widget is imported only
    # when the first message is shown (see ``tui.widgets.message``).
    def on_markdown_link_clicked(self, event: Markdown.LinkClicked) -> None:
        event.stop()
        if not event.href.startswith("cite:"):
            self.app.open_url(event.href)
            return
        view = next((a for a in event.markdown.ancestors if isinstance(a, MessageView)), None)
        if view is not None:
            self.post_message(self.CitationPicked(view, int(event.href[5:])))
