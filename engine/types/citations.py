"""Citations: the sources an answer cited, and whether they still say what was cited
(``engine.chat.citations``, ``engine.drift``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Citation:
    """One source an answer cited, as stored with the message."""

    marker: int
    document_id: int | None
    chunk_id: int | None
    path: str
    page: int | None
    line_start: int | None
    line_end: int | None
    score: float | None
    snippet: str
    drift: CitationDrift | None = None  # whether the source still says this (when shown)


@dataclass(frozen=True, slots=True)
class CitationDrift:
    """Whether a stored citation still holds: ``state`` is ``current`` (same text, same
    place), ``moved`` (found again: ``page``/``line_start``/``line_end`` are the new place),
    ``changed`` (no longer in the file: only the stored snippet says what it was) or
    ``missing`` (the document was removed). ``path`` is where the document is now."""

    state: str
    path: str
    page: int | None = None
    line_start: int | None = None
    line_end: int | None = None


@dataclass(frozen=True, slots=True)
class CitationCheck:
    """One stored citation and whether it still holds (``citation.drift``)."""

    session_id: int
    message_id: int
    citation: Citation
