"""Citation markers: every form a model writes, code that looks like one, unknown numbers."""

from __future__ import annotations

import pytest

from engine.chat.citations import (
    NumberedSource,
    cited_numbers,
    find_markers,
    first_positions,
    location,
    resolve,
    snippet,
)
from engine.types import SearchHit


def hit(n: int, path: str | None = None, page: int | None = None) -> SearchHit:
    return SearchHit(rank=n, score=1.0 / n, path=path or f"/docs/{n}.md", document_id=100 + n,
                     chunk_id=1000 + n, page=page, line_start=10 * n, line_end=10 * n + 4,
                     heading=None, text=f"Text of source {n}.")


SOURCES = [NumberedSource(n, hit(n)) for n in (1, 2, 3)]


@pytest.mark.parametrize(("answer", "numbers"), [
    ("Paris [1].", [1]),
    ("Paris [1, 2].", [1, 2]),
    ("Paris [2][3].", [2, 3]),
    ("Paris [1-3].", [1, 2, 3]),
    ("Paris [1\u20133].", [1, 2, 3]),
    ("Paris [3-1].", [1, 2, 3]),
    ("Paris [ 2 ; 1 ].", [2, 1]),
    ("Paris [2], then [1], then [2] again.", [2, 1]),
    ("Paris [1, 4-5].", [1, 4, 5]),
])
def test_marker_forms(answer: str, numbers: list[int]) -> None:
    assert cited_numbers(answer) == numbers


@pytest.mark.parametrize("answer", [
    "Use `items[0]` to get the first one.",
    "```python\nrow = table[1]\nprint(row[2])\n```\n",
    "See [the docs](https://example.org) or [1](https://example.org/1).",
    "A checkbox [x] and a note [see 1].",
    "An unfinished marker at the end of a cut stream [1",
])
def test_what_is_not_a_marker(answer: str) -> None:
    assert cited_numbers(answer) == []


def test_markers_outside_code_still_count() -> None:
    answer = "Call `f(x[1])` as the guide says [2].\n```\nx[3]\n```\nDone [1]."
    assert cited_numbers(answer) == [2, 1]


def test_positions_are_offsets_in_the_original_answer() -> None:
    answer = "`a[1]` first [2] then [3]"
    assert find_markers(answer) == [(2, answer.index("[2]")), (3, answer.index("[3]"))]


def test_a_huge_range_is_not_expanded() -> None:
    assert cited_numbers("In [1-2024].") == [1, 2024]


def test_only_cited_sources_become_citations_in_marker_order() -> None:
    citations, unknown = resolve("Second [3], first [1], again [3].", SOURCES)
    assert [c.marker for c in citations] == [1, 3]
    assert unknown == []
    first = citations[0]
    assert (first.path, first.chunk_id, first.document_id) == ("/docs/1.md", 1001, 101)
    assert (first.line_start, first.line_end, first.snippet) == (10, 14, "Text of source 1.")
    assert first_positions("Second [3], first [1], again [3].") == {3: 0, 1: 1}


def test_unknown_markers_are_flagged_never_attached() -> None:
    citations, unknown = resolve("Fact [2]. Invented [7]. Zero [0].", SOURCES)
    assert [c.marker for c in citations] == [2]
    assert unknown == [0, 7]
    assert all(c.path == "/docs/2.md" for c in citations)


def test_no_sources_means_every_marker_is_unknown() -> None:
    citations, unknown = resolve("It is so [1].", [])
    assert citations == []
    assert unknown == [1]


def test_location_names_page_and_lines_when_known() -> None:
    assert location("a.pdf", 3, 10, 20) == "a.pdf p.3 L10-20"
    assert location("a.md", None, 7, 7) == "a.md L7"
    assert location("a.md", None, 7, None) == "a.md L7"
    assert location("a.txt", None, None, None) == "a.txt"


def test_snippet_is_cut_at_a_word() -> None:
    text = "word " * 1000
    short = snippet(text, 50)
    assert short.endswith(" …")
    assert len(short) <= 52
    assert "wor …" not in short
    assert snippet("  short  ") == "short"
