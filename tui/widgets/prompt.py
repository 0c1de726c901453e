"""The question box: a multi-line editor where Enter sends.

Enter sends the question; Ctrl+J (or Shift+Enter, Alt+Enter where the terminal reports
them) starts a new line. With ``ui.enter_sends: false`` it is the other way round (Enter
adds a line, Ctrl+J or Alt+Enter sends), and ``ui.keys`` can move either; the placeholder
names the effective keys. Up on the first line and Down on the last walk through earlier
questions, like a shell; what was being typed comes back after the newest one.
"""

from __future__ import annotations

from collections.abc import Iterable

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

from tui.keys import key_label, keys_for

PLACEHOLDER = "Ask a question…  ({send} sends, {newline} new line, ↑ earlier questions)"
# A paste longer than this becomes an attachment (``LongPaste``), not prompt text.
PASTE_CHARS = 2000
PASTE_LINES = 40


class PromptInput(TextArea):
    """A multi-line prompt with send-on-Enter and a question history."""

    BINDINGS = [
        # Not a priority binding: those run before keys still queued for the widget, so a
        # fast typist (or a paste ending in Enter) would send half a question. ``_on_key``
        # lets Enter bubble up to this binding instead of inserting a line break.
        Binding("enter", "submit", "Send", id="prompt.submit"),
        Binding("ctrl+j,shift+enter,alt+enter", "newline", "New line", show=False,
                id="prompt.newline"),
        Binding("up", "cursor_up", "Earlier question (on the first line)", show=False,
                id="prompt.earlier"),
        Binding("down", "cursor_down", "Later question (on the last line)", show=False,
                id="prompt.later"),
    ]

    class Submitted(Message):
        """The user sent ``text`` (stripped, never empty)."""

        def __init__(self, prompt: PromptInput, text: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text

        @property
        def control(self) -> PromptInput:
            return self.prompt

    class LongPaste(Message):
        """A long text was pasted: the screen attaches it instead of inserting it."""

        def __init__(self, prompt: PromptInput, text: str) -> None:
            super().__init__()
            self.prompt = prompt
            self.text = text

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus",
                         highlight_cursor_line=False)
        self.questions: list[str] = []
        self._history_index: int | None = None  # None: editing the draft, not history
        self._draft = ""
        self._own_keys: set[str] = set()  # keys that send or add a line: bindings, not text

    def on_mount(self) -> None:
        send = keys_for(self.app, "prompt.submit", "enter")
        newline = keys_for(self.app, "prompt.newline", "ctrl+j,shift+enter,alt+enter")
        self._own_keys = {*send, *newline}
        self.placeholder = PLACEHOLDER.format(send=key_label(send[0]),
                                              newline=key_label(newline[0]))

    # -- history ----------------------------------------------------------------------------
    def set_history(self, questions: Iterable[str]) -> None:
        """Replace the history (oldest first), e.g. with the questions of a session."""
        self.questions = [q for q in questions if q.strip()][-500:]
        self._history_index = None

    def remember(self, question: str) -> None:
        """Add a sent question to the history (a repeat of the last one is kept once)."""
        if question and (not self.questions or self.questions[-1] != question):
            self.questions.append(question)
        self._history_index = None

    def restore(self, text: str) -> None:
        """Put ``text`` back (after a failed send) with the cursor at its end."""
        self.load_text(text)
        self.move_cursor(self.document.end)
        self._history_index = None

    def _recall(self, index: int | None) -> None:
        if index is None:
            text = self._draft
        else:
            if self._history_index is None:
                self._draft = self.text
            text = self.questions[index]
        self._history_index = index
        self.load_text(text)
        self.move_cursor(self.document.end)

    def action_cursor_up(self, select: bool = False) -> None:
        if not select and self.cursor_location[0] == 0 and self.questions:
            if self._history_index is None:
                self._recall(len(self.questions) - 1)
            elif self._history_index > 0:
                self._recall(self._history_index - 1)
            return
        super().action_cursor_up(select)

    def action_cursor_down(self, select: bool = False) -> None:
        last_row = self.document.line_count - 1
        if not select and self.cursor_location[0] == last_row and self._history_index is not None:
            following = self._history_index + 1
            self._recall(following if following < len(self.questions) else None)
            return
        super().action_cursor_down(select)

    # -- sending ----------------------------------------------------------------------------
    def action_newline(self) -> None:
        start, end = self.selection
        self._replace_via_keyboard("\n", start, end)

    async def _on_key(self, event: events.Key) -> None:
        if event.key in self._own_keys:
            event.prevent_default()  # not typed: the event bubbles on to the binding
            return
        await super()._on_key(event)

    async def _on_paste(self, event: events.Paste) -> None:
        if len(event.text) > PASTE_CHARS or event.text.count("\n") >= PASTE_LINES:
            event.prevent_default()
            event.stop()
            self.post_message(self.LongPaste(self, event.text))
        # otherwise TextArea's own handler (next in the MRO) inserts the text

    def action_submit(self) -> None:
        text = self.text.strip()
        if text:
            self.post_message(self.Submitted(self, text))
