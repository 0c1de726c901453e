"""Turning any user string into a safe keyword query.

User text never reaches FTS5 or ``to_tsquery`` as syntax: quotes, ``AND``/``OR``/``NOT``,
``NEAR(``, ``*``, ``-`` and unbalanced parentheses are just characters. The text is split
into word tokens; each becomes a quoted term, and the terms are OR-ed (BM25 then ranks
documents that match more and rarer terms higher).
"""

from __future__ import annotations

import re

_WORD = re.compile(r"\w+", re.UNICODE)
MAX_TERMS = 64  # a pasted page as a query must not become a pathological statement


def query_terms(text: str) -> list[str]:
    """Distinct lower-cased word tokens of ``text``, in order."""
    seen: dict[str, None] = {}
    for match in _WORD.finditer(text.lower()):
        word = match.group(0).strip("_")
        if word:
            seen.setdefault(word, None)
    return list(seen)[:MAX_TERMS]


def fts5_match(text: str) -> str | None:
    """An FTS5 MATCH expression for ``text``; None when it has no words."""
    terms = query_terms(text)
    if not terms:
        return None
    return " OR ".join('"' + t.replace('"', '""') + '"' for t in terms)


def pg_tsquery_terms(text: str) -> list[str]:
    """Terms for ``plainto_tsquery`` one by one (each is parsed by PostgreSQL, safely)."""
    return query_terms(text)
