"""One message in the transcript: a header line and a Markdown body.

Answers stream into the body through ``AnswerStream``: batched, and split into segments, so
a long answer does not get slower as it grows. When the answer is complete its citation
markers become links: ``[2]`` is clickable and selects source 2 in the sources panel.

Textual's Markdown widget and markdown-it (with pygments for code) are imported when the
first message is shown, not with this module: the empty chat screen paints without them.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content

if TYPE_CHECKING:
    from textual.widget import Widget
    from textual.widgets import Markdown
    from textual.widgets.markdown import MarkdownStream

    from engine.types import Citation
    from tui.widgets.tool_line import ToolLine

_NUMBER = re.compile(r"\d+")
_FENCE_OPEN = re.compile(r"^(`{3,}|~{3,})")
ROLE_LABELS = {"user": "You", "assistant": "Parley", "system": "System"}


def link_markers(text: str) -> str:
    """``text`` with each citation marker's numbers turned into ``cite:N`` links.

    ``[1, 3]`` becomes ``\\[[1](cite:1), [3](cite:3)\\]``: it reads the same, and each
    number can be clicked. Markers inside code are left alone (``items[0]``).
    """
    from engine.chat.citations import find_markers

    starts = sorted({start for _, start in find_markers(text)})
    out: list[str] = []
    last = 0
    for start in starts:
        end = text.find("]", start)
        if end < 0 or start < last:
            continue
        inner = _NUMBER.sub(lambda m: f"[{m.group()}](cite:{m.group()})", text[start + 1:end])
        out.extend((text[last:start], "\\[", inner, "\\]"))
        last = end + 1
    out.append(text[last:])
    return "".join(out)


def has_markers(text: str) -> bool:
    """``text`` has citation markers (the engine's rules; imported with the first answer)."""
    from engine.chat.citations import find_markers

    return bool(find_markers(text))


def code_blocks(text: str) -> list[str]:
    """The fenced and indented code blocks of a Markdown text, in order."""
    from markdown_it import MarkdownIt

    tokens = MarkdownIt("commonmark").parse(text)
    return [t.content for t in tokens if t.type in ("fence", "code_block")]


@dataclass(slots=True)
class Answer:
    """What is known about an answer besides its text."""

    status: str = "complete"
    model: str | None = None
    error: str | None = None
    citations: tuple[Citation, ...] = ()
    unknown_markers: tuple[int, ...] = ()


class MessageView(Vertical):
    """A message of the transcript. ``content`` is its raw Markdown.

    The header (role, model, state) is the border title, so a message costs one container
    and its Markdown: mounting a window of history stays quick.
    """

    def __init__(self, role: str, content: str = "", *, message_id: int | None = None,
                 answer: Answer | None = None, streaming: bool = False,
                 alternatives: tuple[int, ...] = (), attached: tuple[str, ...] = (),
                 tool_lines: Sequence[ToolLine] = ()) -> None:
        super().__init__(classes=f"message -{role}")
        self.attached = attached  # names of the files sent with a question
        self.role = role
        self.content = content
        self.message_id = message_id
        self.alternatives = alternatives  # ids of its versions (branches), oldest first
        self.answer = answer or Answer()
        self.streaming = streaming
        self._code_index = 0
        self._tool_lines = list(tool_lines)  # a stored answer's tool calls, shown first
        self.border_title = self._header()

    def compose(self) -> ComposeResult:
        from textual.widgets import Markdown

        yield from self._tool_lines
        body = link_markers(self.content) if self.role == "assistant" else self.content
        yield Markdown(body, classes="message-body", open_links=False)

    @property
    def bodies(self) -> list[Markdown]:
        """The Markdown widgets of the body (a long streamed answer has several)."""
        from textual.widgets import Markdown

        return list(self.query_children(Markdown))

    @property
    def body(self) -> Markdown:
        """The first Markdown widget of the body."""
        return self.bodies[0]

    def _header(self) -> Content:
        parts: list[tuple[str, str] | str] = [(ROLE_LABELS.get(self.role, self.role), "bold")]
        if self.message_id in self.alternatives:
            number = self.alternatives.index(self.message_id) + 1
            parts.append((f"  ‹ {number}/{len(self.alternatives)} ›", "$text-accent"))
        if self.attached:
            parts.append((f"  📎 {', '.join(self.attached)}", "$text-muted"))
        if self.role == "assistant":
            if self.answer.model:
                parts.append((f"  {self.answer.model}", "$text-muted"))
            if self.streaming:
                parts.append(("  answering…", "$text-accent"))
            elif self.answer.status == "interrupted":
                parts.append(("  ■ interrupted", "$text-warning"))
            elif self.answer.status == "error":
                parts.append(("  ✖ failed", "$text-error"))
            if self.answer.citations and not self.streaming:
                n = len(self.answer.citations)
                parts.append((f"  {n} source{'s' if n != 1 else ''}", "$text-muted"))
            if self.answer.unknown_markers and not self.streaming:
                marks = ", ".join(f"[{m}]" for m in self.answer.unknown_markers)
                parts.append((f"  ⚠ {marks} unknown", "$text-warning"))
        return Content.assemble(*parts)

    def refresh_header(self) -> None:
        """Redraw the header after ``answer`` or ``streaming`` changed."""
        self.border_title = self._header()

    def stream(self) -> AnswerStream:
        """A stream that appends to the body (``await stream.write(text)``)."""
        return AnswerStream(self)

    async def finish(self, answer: Answer) -> None:
        """The answer is complete: show its state and turn its markers into links."""
        self.answer = answer
        self.streaming = False
        self.refresh_header()
        if answer.error and not self.content.strip():
            self.content = ""
            await self.body.update(f"*{answer.error}*")
            return
        if self.role != "assistant":
            return
        for body in self.bodies:  # segments closed while streaming are linked already
            if has_markers(body.source):
                await body.update(link_markers(body.source))

    def next_code_block(self) -> tuple[str, int, int] | None:
        """(code, number, total) of the next code block to copy, cycling; None if none."""
        blocks = code_blocks(self.content)
        if not blocks:
            return None
        index = self._code_index % len(blocks)
        self._code_index = index + 1
        return blocks[index], index + 1, len(blocks)


class AnswerStream:
    """Streams text into a ``MessageView`` without slowing down as the answer grows.

    Two limits keep each screen update cheap: text is handed to the Markdown widget at
    most ``FPS`` times a second (Textual's ``MarkdownStream`` batches further when the
    screen lags), and the body is split into segments of about ``SEGMENT_CHARS``, at a
    paragraph break outside code, because appending to a Markdown widget costs time in
    proportion to its length.
    """

    FPS = 10
    SEGMENT_CHARS = 2000

    def __init__(self, view: MessageView) -> None:
        from textual.widgets import Markdown

        self.view = view
        self._pending: list[str] = []
        self._segment = ""  # text written to the current segment
        self._stream: MarkdownStream = Markdown.get_stream(view.bodies[-1])
        self._lock = asyncio.Lock()
        self._closed = False
        # The timer only queues a flush on the view: a timer's own task is cancelled when
        # the timer stops, which must never happen in the middle of a flush.
        self._timer = view.set_interval(1 / self.FPS, lambda: view.call_later(self.flush))

    async def write(self, text: str) -> None:
        """Add text; it reaches the screen at the next flush."""
        self.view.content += text
        self._pending.append(text)

    def _split_point(self, text: str) -> int | None:
        """Where to start a new segment in ``text`` (after a paragraph break), if anywhere."""
        if len(self._segment) + len(text) < self.SEGMENT_CHARS:
            return None
        start = max(0, self.SEGMENT_CHARS - len(self._segment))
        at = text.find("\n\n", start)
        while at >= 0:
            head = self._segment + text[: at + 2]
            if _open_fence(head) is None:
                return at + 2
            at = text.find("\n\n", at + 2)
        return None

    async def flush(self) -> None:
        """Hand pending text to the Markdown widget (a new segment when one is long)."""
        async with self._lock:
            if self._closed or not self.view.is_attached:  # gone: another session is shown
                return
            text = "".join(self._pending)
            self._pending.clear()
            while text:
                cut = self._split_point(text)
                if cut is None:
                    await self._stream.write(text)
                    self._segment += text
                    return
                await self._stream.write(text[:cut])
                await self._stream.stop()
                closed = self.view.bodies[-1]
                if has_markers(closed.source):  # link its markers now, not all at the end
                    await closed.update(link_markers(closed.source))
                from textual.widgets import Markdown

                segment = Markdown(classes="message-body", open_links=False)
                await self.view.mount(segment)
                self._stream = Markdown.get_stream(segment)
                self._segment = ""
                text = text[cut:]

    async def insert(self, widget: Widget) -> None:
        """Put ``widget`` (a tool line) after the text so far; later text goes below it."""
        from textual.widgets import Markdown

        await self.flush()
        async with self._lock:
            if self._closed or not self.view.is_attached:
                return
            await self._stream.stop()
            await self.view.mount(widget)
            segment = Markdown(classes="message-body", open_links=False)
            await self.view.mount(segment)
            self._stream = Markdown.get_stream(segment)
            self._segment = ""

    async def stop(self) -> None:
        """Show the rest and end the stream."""
        self._timer.stop()
        await self.flush()
        async with self._lock:
            self._closed = True
            await self._stream.stop()


def _open_fence(text: str) -> str | None:
    """The fence (```` ``` ```` or ``~~~``) left open at the end of ``text``, if any."""
    fence: str | None = None
    for line in text.splitlines():
        stripped = line.lstrip()
        if fence is None:
            match = _FENCE_OPEN.match(stripped)
            if match and len(line) - len(stripped) < 4:
                fence = match.group(1)
        else:
            closing = stripped.rstrip()
            if len(closing) >= len(fence) and set(closing) == {fence[0]}:
                fence = None
    return fence
