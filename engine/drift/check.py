"""Re-anchoring stored citations in what is indexed now.

For each citation, in order, with batched queries:

1. its document: by id, else (removed and maybe ingested again) by path; none: ``missing``;
2. the cited chunk is still one of the document's chunks (chunks are never edited in
   place, so its text is unchanged): ``current``;
3. a chunk of the document with the cited chunk's hash: ``current`` at the same lines,
   else ``moved`` to that chunk's page and lines;
4. the stored snippet found in the document's text (rebuilt from its chunks' spans):
   exactly, then by fuzzy alignment scoring at least ``FUZZY_THRESHOLD``; the new page and
   lines come from where it was found;
5. else ``changed``.

Steps 4-5 read the chunks of documents that changed only, so a session whose sources did
not change costs three small queries whatever its length.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.types import CitationDrift

CURRENT, MOVED, CHANGED, MISSING = "current", "moved", "changed", "missing"
FUZZY_THRESHOLD = 90.0
"""partial_ratio (0-100) from which a snippet counts as found: measured by
``bench/library_sync.py --part threshold``: a 120-word passage with two words changed
scores 98-100 against the edited text; with half its words rewritten at most 80; against
unrelated text at most 64."""
_MAX_FUZZY_TEXT = 2_000_000  # characters: beyond, fuzzy alignment is skipped (too slow)
_ELLIPSIS = " …"


@dataclass(frozen=True, slots=True)
class _Doc:
    id: int
    path: str
    chunk_set_id: int | None


@dataclass(frozen=True, slots=True)
class _Span:
    page: int | None
    line_start: int | None
    line_end: int | None


def _needle(snippet: str) -> str:
    text = snippet.strip()
    return text[: -len(_ELLIPSIS)].rstrip() if text.endswith(_ELLIPSIS.strip()) else text


async def check_citations(s: AsyncSession, user_id: int,
                          rows: Sequence[m.Citation]) -> dict[int, CitationDrift]:
    """citation id -> its drift, for ``rows`` (citations of one user)."""
    if not rows:
        return {}
    by_id = await _documents_by_id(s, user_id, {r.document_id for r in rows if r.document_id})
    lost = {r.path for r in rows if r.document_id not in by_id}
    by_path = await _documents_by_path(s, user_id, lost) if lost else {}
    docs = {r.id: by_id.get(r.document_id or 0) or by_path.get(r.path) for r in rows}
    chunk_sets = await _chunk_sets(s, [r.chunk_id for r in rows if r.chunk_id])
    pending: list[m.Citation] = []
    out: dict[int, CitationDrift] = {}
    for r in rows:
        doc = docs[r.id]
        if doc is None or doc.chunk_set_id is None:
            out[r.id] = CitationDrift(MISSING, r.path)
        elif r.chunk_id is not None and chunk_sets.get(r.chunk_id) == doc.chunk_set_id:
            out[r.id] = CitationDrift(CURRENT, doc.path, r.page, r.line_start, r.line_end)
        else:
            pending.append(r)
    if pending:
        out.update(await _reanchor(s, pending, docs))
    return out


def _readable(s: AsyncSession, user_id: int) -> ColumnElement[bool]:
    """Documents a citation may name: on PostgreSQL every row the user can see (their own
    and those of collections shared with them: row-level security decides); on SQLite,
    which has no sharing, the user's own."""
    if s.get_bind().dialect.name == "postgresql":
        return true()
    return m.Document.user_id == user_id


async def _documents_by_id(s: AsyncSession, user_id: int, ids: set[int]) -> dict[int, _Doc]:
    out: dict[int, _Doc] = {}
    wanted = sorted(ids)
    for first in range(0, len(wanted), 500):
        for i, path, set_id in await s.execute(
                select(m.Document.id, m.Document.source_path, m.Document.chunk_set_id)
                .where(m.Document.id.in_(wanted[first:first + 500]), _readable(s, user_id))):
            out[i] = _Doc(i, path, set_id)
    return out


async def _documents_by_path(s: AsyncSession, user_id: int, paths: set[str]) -> dict[str, _Doc]:
    out: dict[str, _Doc] = {}
    wanted = sorted(paths)
    for first in range(0, len(wanted), 500):
        for i, path, set_id in await s.execute(
                select(m.Document.id, m.Document.source_path, m.Document.chunk_set_id)
                .where(m.Document.source_path.in_(wanted[first:first + 500]),
                       m.Document.user_id == user_id, m.Document.chunk_set_id.is_not(None))
                .order_by(m.Document.id)):
            out.setdefault(path, _Doc(i, path, set_id))
    return out


async def _chunk_sets(s: AsyncSession, chunk_ids: list[int]) -> dict[int, int]:
    out: dict[int, int] = {}
    wanted = sorted(set(chunk_ids))
    for first in range(0, len(wanted), 500):
        out.update(dict((await s.execute(select(m.Chunk.id, m.Chunk.chunk_set_id).where(
            m.Chunk.id.in_(wanted[first:first + 500])))).tuples().all()))
    return out


async def _reanchor(s: AsyncSession, rows: list[m.Citation],
                    docs: dict[int, _Doc | None]) -> dict[int, CitationDrift]:
    set_ids = sorted({d.chunk_set_id for r in rows if (d := docs[r.id]) and d.chunk_set_id})
    chunks: dict[int, list[m.Chunk]] = {}
    for first in range(0, len(set_ids), 200):
        for chunk in await s.scalars(select(m.Chunk).where(
                m.Chunk.chunk_set_id.in_(set_ids[first:first + 200]))
                .order_by(m.Chunk.chunk_set_id, m.Chunk.chunk_index)):
            chunks.setdefault(chunk.chunk_set_id, []).append(chunk)
    texts: dict[int, str] = {}
    out: dict[int, CitationDrift] = {}
    for r in rows:
        doc = docs[r.id]
        assert doc is not None and doc.chunk_set_id is not None
        mine = chunks.get(doc.chunk_set_id, [])
        span = next((_Span(c.page, c.line_start, c.line_end) for c in mine
                     if r.chunk_hash and c.content_hash == r.chunk_hash), None)
        if span is None:
            if doc.chunk_set_id not in texts:
                texts[doc.chunk_set_id] = _assemble(mine)
            span = _find(_needle(r.snippet), texts[doc.chunk_set_id], mine)
        if span is None:
            out[r.id] = CitationDrift(CHANGED, doc.path)
            continue
        same = (span.page, span.line_start, span.line_end) == (r.page, r.line_start,
                                                               r.line_end)
        out[r.id] = CitationDrift(CURRENT if same and doc.path == r.path else MOVED, doc.path,
                                  span.page, span.line_start, span.line_end)
    return out


def _assemble(chunks: Sequence[m.Chunk]) -> str:
    """The document's text from its chunks (each is ``text[char_start:char_end]``)."""
    if not chunks:
        return ""
    size = max(c.char_end for c in chunks)
    buffer = [" "] * size
    for c in chunks:
        buffer[c.char_start:c.char_end] = c.text
    return "".join(buffer)


def _find(needle: str, text: str, chunks: Sequence[m.Chunk]) -> _Span | None:
    if not needle or not text:
        return None
    start = text.find(needle)
    end = start + len(needle)
    if start < 0:
        if len(text) > _MAX_FUZZY_TEXT:
            return None
        from rapidfuzz import fuzz  # only when a source changed: not on every display

        found = fuzz.partial_ratio_alignment(needle, text, score_cutoff=FUZZY_THRESHOLD)
        if found is None:
            return None
        start, end = found.dest_start, found.dest_end
    return _span_at(text, start, end, chunks)


def _span_at(text: str, start: int, end: int, chunks: Sequence[m.Chunk]) -> _Span:
    first = next((c for c in chunks if c.char_start <= start < c.char_end), chunks[0])
    line_start = line_end = None
    if first.line_start is not None:
        line_start = first.line_start + text.count("\n", first.char_start, start)
        line_end = line_start + text.count("\n", start, max(start, end - 1))
    return _Span(first.page, line_start, line_end)


async def hashes_at_answer(s: AsyncSession, chunk_ids: Sequence[int | None],
                           document_ids: Sequence[int | None]
                           ) -> tuple[dict[int, str], dict[int, str | None]]:
    """(chunk id -> content hash, document id -> content hash) to store with new
    citations: what the source said when the answer was written."""
    chunks = {i for i in chunk_ids if i is not None}
    docs = {i for i in document_ids if i is not None}
    chunk_hash = dict((await s.execute(select(m.Chunk.id, m.Chunk.content_hash).where(
        m.Chunk.id.in_(chunks)))).tuples().all()) if chunks else {}
    doc_hash = dict((await s.execute(select(m.Document.id, m.Document.content_hash).where(
        m.Document.id.in_(docs)))).tuples().all()) if docs else {}
    return chunk_hash, doc_hash
