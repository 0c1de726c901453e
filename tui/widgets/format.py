"""Small text helpers shared by the widgets: dates, counts, paths and highlighted matches.

Everything here is pure (no widgets, no engine calls), so it is cheap to import and easy
to test. Times are shown in local time; nothing here reads a clock unless no ``now`` is
given, which keeps snapshot tests deterministic.
"""

from __future__ import annotations

import os
import re
from datetime import datetime

from textual.content import Content

_WORD = re.compile(r"\w[\w'-]*", re.UNICODE)
# Common English endings dropped before highlighting, so "indexing" also lights up
# "indexed" and "index" (the keyword search stems words the same way).
_SUFFIXES = ("ing", "ed", "es", "s")
STOP_WORDS = frozenset({"a", "an", "and", "are", "as", "at", "be", "by", "for", "from", "how",
                        "in", "is", "it", "of", "on", "or", "the", "to", "what", "when",
                        "where", "which", "who", "why", "with"})


def when(moment: datetime, now: datetime | None = None) -> str:
    """A compact local time: ``14:05`` today, ``Jun 03`` this year, else ``2024-06-03``."""
    local = moment.astimezone()
    today = (now or datetime.now()).astimezone()
    if local.date() == today.date():
        return local.strftime("%H:%M")
    if local.year == today.year:
        return local.strftime("%b %d")
    return local.strftime("%Y-%m-%d")


def count(value: float) -> str:
    """``950``, ``12.3k``, ``4.1M``: numbers that fit a status bar."""
    value = float(value)
    if abs(value) < 10_000:
        return f"{value:,.0f}"
    if abs(value) < 1_000_000:
        return f"{value / 1000:.1f}k"
    return f"{value / 1_000_000:.1f}M"


def home_path(path: str) -> str:
    """``path`` with the home directory written as ``~``."""
    home = os.path.expanduser("~")
    if home not in ("", "/") and (path == home or path.startswith(home + os.sep)):
        return "~" + path[len(home):]
    return path


def short_path(path: str, width: int) -> str:
    """``path`` shortened to ``width`` cells, keeping its end (the file name matters most)."""
    path = home_path(path)
    if len(path) <= width or width < 8:
        return path
    return "…" + path[-(width - 1):]


def location(path: str, page: int | None, line_start: int | None,
             line_end: int | None) -> str:
    """Where a passage is: ``notes/a.md  p.3  L10-20`` (page and lines when known)."""
    parts = [home_path(path)]
    if page is not None:
        parts.append(f"p.{page}")
    if line_start is not None:
        end = line_end if line_end is not None else line_start
        parts.append(f"L{line_start}" if end == line_start else f"L{line_start}-{end}")
    return "  ".join(parts)


def query_terms(query: str) -> list[str]:
    """The words of a query worth highlighting (no stop words), stems first-come."""
    terms: list[str] = []
    for word in _WORD.findall(query.lower()):
        if word in STOP_WORDS or len(word) < 2:
            continue
        for suffix in _SUFFIXES:
            if len(word) > len(suffix) + 2 and word.endswith(suffix):
                word = word[: -len(suffix)]
                break
        if word not in terms:
            terms.append(word)
    return terms


def term_pattern(query: str) -> re.Pattern[str] | None:
    """A case-insensitive pattern matching any query term at the start of a word."""
    terms = query_terms(query)
    if not terms:
        return None
    alternatives = "|".join(re.escape(t) for t in sorted(terms, key=len, reverse=True))
    return re.compile(rf"\b(?:{alternatives})\w*", re.IGNORECASE)


def highlight(text: str, query: str, style: str = "bold $text-accent on $accent 25%") -> Content:
    """``text`` as content with every query term highlighted."""
    content = Content(text)
    pattern = term_pattern(query)
    return content if pattern is None else content.highlight_regex(pattern, style=style)


def one_line(text: str, limit: int) -> str:
    """``text`` on one line (whitespace collapsed), cut to ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: max(0, limit - 1)].rstrip() + "…"


def size_text(size: int) -> str:
    """``12 KB``, ``3.4 MB``."""
    value = float(size)
    for unit in ("B", "KB", "MB", "GB"):
        if value < 1024 or unit == "GB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} GB"
