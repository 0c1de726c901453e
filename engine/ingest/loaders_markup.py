"""Markup structure: the line rules of Markdown, reStructuredText and AsciiDoc, and the
outline (sections, headings, fenced blocks, paragraphs) built from them.

The loader uses the rules for titles and the chunker uses the outline, so both agree on what
a heading is. HTML is read with the Markdown rules: its loader writes headings as ``#`` lines
and ``<pre>`` as fenced code. Plain text is read with the reStructuredText underline rule
(PEPs and many READMEs underline their headings), restricted to ``= - ~ * #``.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_ATX_MD = re.compile(r" {0,3}(#{1,6})[ \t]+(.+?)(?:[ \t]+#+)?[ \t]*$")
_ATX_ADOC = re.compile(r"(={1,6})[ \t]+(\S.*?)[ \t]*$")
_SETEXT_MD = re.compile(r" {0,3}(={3,}|-{3,})[ \t]*$")
_RST_ADORN = re.compile(r"([!-/:-@\[-`{-~])\1{2,}[ \t]*$")
_ADOC_LEVELS = {"=": 1, "-": 2, "~": 3, "^": 4, "+": 5}
_MD_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})")
_ADOC_FENCE = re.compile(r"(-{4,}|\.{4,}|={4,}|\*{4,}|_{4,}|\+{4,}|/{4,}|\|={3,}|`{3,})[ \t]*$")
_NOT_A_TITLE = ("[", "/", "|", "-", "*", "+", ">", "```", "~~~", ".", "..", ":")
MARKDOWN_LIKE = frozenset({"markdown", "html"})
UNDERLINED = frozenset({"rst", "text"})


def atx_heading(line: str, kind: str) -> tuple[int, str] | None:
    """(level, title) when ``line`` is a one-line heading (``# x`` / ``== x``) of ``kind``."""
    if kind in MARKDOWN_LIKE:
        m = _ATX_MD.match(line)
    elif kind == "asciidoc":
        m = _ATX_ADOC.match(line)
    else:
        return None
    return (len(m.group(1)), m.group(2).strip()) if m else None


def underline(title: str, under: str, kind: str) -> str | None:
    """The adornment character when ``under`` underlines ``title`` as a heading, else None.

    Markdown and AsciiDoc levels follow from the character (``underline_level``); for
    reStructuredText and plain text the caller ranks characters by first appearance.
    """
    head = title.strip()
    if not head or head.startswith(_NOT_A_TITLE):
        return None
    mark = under.rstrip()
    if kind in MARKDOWN_LIKE:
        m = _SETEXT_MD.match(mark)
        return m.group(1)[0] if m else None
    if kind == "asciidoc":
        if len(mark) >= 2 and mark[0] in _ADOC_LEVELS and mark == mark[0] * len(mark) \
                and abs(len(mark) - len(title.rstrip())) <= 2:
            return mark[0]
        return None
    if kind in UNDERLINED and _RST_ADORN.match(mark) and len(mark) >= len(title.rstrip()):
        if kind == "text" and mark[0] not in "=-~*#":
            return None
        return mark[0]
    return None


def underline_level(char: str, kind: str) -> int:
    """Heading level of a Markdown or AsciiDoc underline character."""
    if kind == "asciidoc":
        return _ADOC_LEVELS[char]
    return 1 if char == "=" else 2


def adornment(line: str) -> str | None:
    """The character of a reStructuredText over/underline line, else None."""
    m = _RST_ADORN.match(line)
    return m.group(1) if m else None


def fence_open(line: str, kind: str) -> str | None:
    """The fence marker when ``line`` opens a code/delimited block, else None."""
    if kind in MARKDOWN_LIKE:
        m = _MD_FENCE.match(line)
        return m.group(1) if m else None
    if kind == "asciidoc":
        m = _ADOC_FENCE.match(line)
        return m.group(1) if m else None
    return None


def fence_closes(marker: str, line: str, kind: str) -> bool:
    """True when ``line`` closes the block opened by ``marker``."""
    stripped = line.strip()
    if kind == "asciidoc":
        return stripped == marker
    return (len(stripped) >= len(marker) and stripped == marker[0] * len(stripped)
            and len(line) - len(line.lstrip(" ")) <= 3)


class Block(NamedTuple):
    """A heading, a fenced block or a paragraph: ``text[start:end]``, trimmed."""

    start: int
    end: int
    heading: bool
    fenced: bool  # code or another delimited block: cut at lines, never at sentences


class Outline:
    """Headings, fences and paragraphs of one document; heading levels carry across pages."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.stack: list[tuple[int, str]] = []
        self.rst_styles: dict[tuple[str, bool], int] = {}

    def sections(self, text: str, start: int, end: int) -> list[tuple[str | None, list[Block]]]:
        """(heading path, blocks) per section; a heading with no text of its own joins
        the first subsection under it."""
        path = " > ".join(t for _, t in self.stack) or None
        out: list[tuple[str | None, list[Block]]] = [(path, [])]
        for s, e, heading, fenced in self._blocks(text, start, end):
            if heading is not None:
                level, title = heading
                while self.stack and self.stack[-1][0] >= level:
                    self.stack.pop()
                self.stack.append((level, title))
                new_path = " > ".join(t for _, t in self.stack)
                prev_path, prev = out[-1]
                if prev and all(p.heading for p in prev) \
                        and prev_path and new_path.startswith(prev_path + " > "):
                    out[-1] = (new_path, prev)  # a bare parent heading: keep it with its child
                else:
                    out.append((new_path, []))
                out[-1][1].append(Block(s, e, heading=True, fenced=True))
            else:
                out[-1][1].append(Block(s, e, heading=False, fenced=fenced))
        return [(p, pieces) for p, pieces in out if pieces]

    def _blocks(self, text: str, start: int, end: int
                ) -> list[tuple[int, int, tuple[int, str] | None, bool]]:
        kind = self.kind
        lines: list[tuple[int, int]] = []
        pos = start
        while pos < end:
            nl = text.find("\n", pos, end)
            stop = end if nl < 0 else nl
            lines.append((pos, stop))
            pos = stop + 1
        blocks: list[tuple[int, int, tuple[int, str] | None, bool]] = []
        para: int | None = None

        def flush(last: int) -> None:
            if para is not None:
                blocks.append((lines[para][0], lines[last][1], None, kind == "code"))

        i = 0
        n = len(lines)
        if kind == "markdown" and n > 1 and text[lines[0][0]:lines[0][1]].rstrip() == "---":
            close = next((j for j in range(1, min(n, 200))
                          if text[lines[j][0]:lines[j][1]].rstrip() in ("---", "...")), None)
            if close is not None:  # YAML front matter
                blocks.append((lines[0][0], lines[close][1], None, True))
                i = close + 1
        while i < n:
            line = text[lines[i][0]:lines[i][1]]
            if not line.strip():
                flush(i - 1)
                para = None
                i += 1
                continue
            if para == i - 1 and (char := underline(
                    text[lines[para][0]:lines[para][1]], line, kind)) is not None:
                title = text[lines[para][0]:lines[para][1]].strip()
                blocks.append((lines[para][0], lines[i][1], (self._level(char, False), title),
                               False))
                para = None
                i += 1
                continue
            if para is None and kind in UNDERLINED and i + 2 < n \
                    and (char := adornment(line)) is not None:
                title = text[lines[i + 1][0]:lines[i + 1][1]].strip()
                under = text[lines[i + 2][0]:lines[i + 2][1]].rstrip()
                if title and under == line.rstrip() and len(under) >= len(title):
                    blocks.append((lines[i][0], lines[i + 2][1], (self._level(char, True), title),
                                   False))
                    i += 3
                    continue
            marker = fence_open(line, kind)
            if marker is not None:
                flush(i - 1)
                para = None
                j = next((j for j in range(i + 1, n)
                          if fence_closes(marker, text[lines[j][0]:lines[j][1]], kind)),
                         n - 1)
                blocks.append((lines[i][0], lines[j][1], None, True))
                i = j + 1
                continue
            heading = atx_heading(line, kind)
            if heading is not None:
                flush(i - 1)
                para = None
                blocks.append((lines[i][0], lines[i][1], heading, False))
                i += 1
                continue
            if para is None:
                para = i
            i += 1
        flush(n - 1)
        return [(*trim(text, s, e), h, f) for s, e, h, f in blocks if text[s:e].strip()]

    def _level(self, char: str, overline: bool) -> int:
        if self.kind not in UNDERLINED:
            return underline_level(char, self.kind)
        # reStructuredText ranks adornment styles by first appearance in the document
        return self.rst_styles.setdefault((char, overline), len(self.rst_styles) + 1)


def trim(text: str, start: int, end: int) -> tuple[int, int]:
    """``(start, end)`` narrowed to exclude leading and trailing whitespace."""
    while start < end and text[start].isspace():
        start += 1
    while end > start and text[end - 1].isspace():
        end -= 1
    return start, end
