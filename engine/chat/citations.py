"""Citation markers: finding them in an answer and turning them into stored citations.

An answer cites the numbered sources of its prompt with markers: ``[1]``, ``[1, 2]``,
``[1][3]``, ``[1-3]`` (an en dash works too). Only sources the answer actually cites become
citations. A marker naming no source (``[7]`` when there were six) is reported as unknown
and never attached to another document: a wrong citation is worse than none.

Markers inside code (fenced blocks and inline code spans) are not citations: ``items[0]``
in a code sample must not cite anything.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from engine.types import Citation, SearchHit

# A bracket holding numbers and ranges separated by commas. "[1](http://...)" is a Markdown
# link, not a citation. Brackets with anything else inside ("[see 1]", "[x]") are text.
_MARKER = re.compile(
    r"\[\s*(\d{1,4}(?:\s*[-\u2013]\s*\d{1,4})?(?:\s*[,;]\s*\d{1,4}(?:\s*[-\u2013]\s*\d{1,4})?)*)"
    r"\s*\](?!\()")
_ITEM = re.compile(r"(\d+)(?:\s*[-\u2013]\s*(\d+))?")
_FENCE = re.compile(r"^[ \t]{0,3}(`{3,}|~{3,}).*?(?:^[ \t]{0,3}\1[ \t]*$|\Z)",
                    re.MULTILINE | re.DOTALL)
_INLINE_CODE = re.compile(r"(`+)(?!`).+?(?<!`)\1(?!`)", re.DOTALL)
# A range wider than this is not a citation anyone meant ("[1-2024]"): keep its two ends.
MAX_RANGE = 50
SNIPPET_CHARS = 2000


@dataclass(frozen=True, slots=True)
class NumberedSource:
    """A retrieved passage as numbered in the prompt."""

    marker: int
    hit: SearchHit


def _blank(match: re.Match[str]) -> str:
    # Same length, so positions in the answer stay true.
    return " " * len(match.group(0))


def _without_code(text: str) -> str:
    return _INLINE_CODE.sub(_blank, _FENCE.sub(_blank, text))


def find_markers(text: str) -> list[tuple[int, int]]:
    """Every ``(source number, character offset)`` the answer cites, in reading order.

    A number cited several times appears several times. Ranges are expanded.
    """
    found: list[tuple[int, int]] = []
    for match in _MARKER.finditer(_without_code(text)):
        for item in _ITEM.finditer(match.group(1)):
            low = int(item.group(1))
            high = int(item.group(2)) if item.group(2) else low
            if low > high:
                low, high = high, low
            numbers = range(low, high + 1) if high - low <= MAX_RANGE else (low, high)
            found.extend((number, match.start()) for number in numbers)
    return found


def cited_numbers(text: str) -> list[int]:
    """The distinct source numbers cited, in the order they first appear."""
    seen: dict[int, None] = {}
    for number, _ in find_markers(text):
        seen.setdefault(number, None)
    return list(seen)


def resolve(text: str,
            sources: Sequence[NumberedSource]) -> tuple[list[Citation], list[int]]:
    """(citations, unknown markers) of an answer given the sources of its prompt.

    Citations come one per cited source, ordered by marker; ``position`` order is the
    order of first appearance (``first_positions``). Unknown markers are sorted.
    """
    by_marker = {source.marker: source for source in sources}
    citations: list[Citation] = []
    unknown: list[int] = []
    for number in cited_numbers(text):
        source = by_marker.get(number)
        if source is None:
            unknown.append(number)
            continue
        citations.append(to_citation(source))
    citations.sort(key=lambda c: c.marker)
    return citations, sorted(unknown)


def first_positions(text: str) -> dict[int, int]:
    """Source number -> rank of its first appearance (0 for the first source cited)."""
    return {number: rank for rank, number in enumerate(cited_numbers(text))}


def to_citation(source: NumberedSource) -> Citation:
    """The citation of one numbered source (its chunk text, shortened, as the snippet)."""
    hit = source.hit
    return Citation(marker=source.marker, document_id=hit.document_id, chunk_id=hit.chunk_id,
                    # a shared document names its owner: "alice:/path/to/file"
                    path=hit.path if hit.owner is None else f"{hit.owner}:{hit.path}",
                    page=hit.page, line_start=hit.line_start,
                    line_end=hit.line_end, score=hit.score, snippet=snippet(hit.text))


def snippet(text: str, limit: int = SNIPPET_CHARS) -> str:
    """``text`` shortened to ``limit`` characters at a word boundary."""
    text = text.strip()
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(None, 1)[0]
    return cut + " …"


def location(path: str, page: int | None, line_start: int | None,
             line_end: int | None) -> str:
    """Where a source is: ``notes/a.md p.3 L10-20`` (page and lines when known)."""
    parts = [path]
    if page is not None:
        parts.append(f"p.{page}")
    if line_start is not None:
        end = line_end if line_end is not None else line_start
        parts.append(f"L{line_start}" if end == line_start else f"L{line_start}-{end}")
    return " ".join(parts)
