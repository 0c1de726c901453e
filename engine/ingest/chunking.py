"""Split a loaded document into chunks that follow its structure, within a token budget.

Structure first: PDF pages (a chunk never spans two), then headings (Markdown, HTML,
reStructuredText, AsciiDoc), then blank-line paragraphs; fenced code blocks stay whole when
they fit. A piece that does not fit is split at sentences, then lines, then words (code: at
blank lines, lines, words), and a single run without spaces at characters. Consecutive
chunks of one section share about ``overlap_tokens`` at their boundary: the next chunk
starts that far back, at a word.

Guarantees (property-tested): ``chunk.text == doc.text[char_start:char_end]``; the chunks
cover every non-whitespace character; no chunk is empty or starts or ends with whitespace;
``token_count == count_tokens(chunk.text) <= max_tokens``, except for a single character
that alone counts more. ``line_start``/``line_end`` are the 1-based lines of the first and
last character, counted from the top of the file, or for PDFs from the top of the chunk's
page. Chunks are also capped at ``16 * max_tokens`` characters, so a long run that the
tokenizer maps to one unknown token does not become a huge chunk.

Speed: with the default counter the text is tokenized once up front, and the count of a
span that starts and ends at whitespace is two binary searches (``_Counts``); other chunks
(cut inside a word) are counted again exactly.
"""

from __future__ import annotations

import hashlib
import re
from array import array
from bisect import bisect_left, bisect_right
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from engine.ingest.loaders import LoadedDocument
from engine.ingest.loaders_markup import Block, Outline, trim

TokenCounter = Callable[[str], int]

_CHARS_PER_TOKEN_CAP = 16
_SENTENCE_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)|[。！？]+")
_SEPARATORS = {"blank": re.compile(r"\n[ \t]*\n"), "line": re.compile(r"\n"),
               "word": re.compile(r"\s+")}
_PROSE_LEVELS = ("sentence", "line", "word")
_CODE_LEVELS = ("blank", "line", "word")  # never cut code at a period
_WORD = re.compile(r"\S+")


@dataclass(frozen=True, slots=True)
class ChunkSpec:
    """One chunk of a document, with everything a citation needs."""

    index: int
    text: str
    char_start: int
    char_end: int
    line_start: int  # 1-based, inclusive (page-relative for PDFs)
    line_end: int
    page: int | None
    heading_path: str | None  # e.g. "Install > Linux"
    token_count: int
    content_hash: str  # sha256 hex of text


def chunk_document(doc: LoadedDocument, *, max_tokens: int, overlap_tokens: int,
                   count_tokens: TokenCounter | None = None) -> list[ChunkSpec]:
    """Chunks of ``doc`` of at most ``max_tokens`` tokens each (see the module docstring).

    ``count_tokens`` defaults to the bundled embedder's WordPiece tokenizer.
    """
    if max_tokens < 1:
        raise ValueError("max_tokens must be at least 1")
    chunker = _Chunker(_Counts(doc.text, count_tokens), max_tokens, overlap_tokens)
    newlines = [m.start() for m in re.finditer("\n", doc.text)]

    def line_of(pos: int) -> int:
        return bisect_right(newlines, pos - 1) + 1

    specs: list[ChunkSpec] = []
    outline = Outline(doc.kind)
    for page, start, end in _regions(doc):
        first_line = line_of(start) - 1 if page is not None else 0
        for path, blocks in outline.sections(doc.text, start, end):
            for s, e, tokens in chunker.chunk_section(blocks):
                text = doc.text[s:e]
                specs.append(ChunkSpec(
                    index=len(specs), text=text, char_start=s, char_end=e,
                    line_start=line_of(s) - first_line, line_end=line_of(e - 1) - first_line,
                    page=page, heading_path=path, token_count=tokens,
                    content_hash=hashlib.sha256(text.encode("utf-8")).hexdigest()))
    return specs


def _regions(doc: LoadedDocument) -> list[tuple[int | None, int, int]]:
    """(page, start, end) spans chunked separately; text outside every page is kept too."""
    if not doc.pages:
        return [(None, 0, len(doc.text))]
    regions: list[tuple[int | None, int, int]] = []
    pos = 0
    for span in sorted(doc.pages, key=lambda p: p.char_start):
        if span.char_start > pos and doc.text[pos:span.char_start].strip():
            regions.append((None, pos, span.char_start))
        start = max(span.char_start, pos)
        if span.char_end > start:
            regions.append((span.page, start, span.char_end))
        pos = max(pos, span.char_end)
    if doc.text[pos:].strip():
        regions.append((None, pos, len(doc.text)))
    return regions


class _Counts:
    """Token counts of spans of one text: ``plan`` (fast, for packing) and ``exact``.

    With the default tokenizer, ``plan`` counts the token start offsets of the whole text
    that fall in the span: exact for spans bounded by whitespace, since WordPiece never
    crosses whitespace. ``exact_many`` (the count a chunk is emitted with) trusts the plan
    for such spans and tokenizes the others again.
    """

    def __init__(self, text: str, count_tokens: TokenCounter | None) -> None:
        self.text = text
        self._custom = count_tokens
        self._starts: array[int] | None = None

    def plan(self, start: int, end: int) -> int:
        if self._custom is not None:
            return self._custom(self.text[start:end])
        if self._starts is None:
            from engine.providers.local_embedder import token_starts

            # an int64 array: a tenth of the memory of a list, and bisect is faster on it
            # than numpy's searchsorted is per call
            self._starts = array("q", token_starts(self.text).tobytes())
        return bisect_left(self._starts, end) - bisect_left(self._starts, start)

    def cut_after(self, start: int, tokens: int) -> list[int]:
        """Planned ends for a span from ``start`` holding at most ``tokens`` tokens (the
        start of the next token, and one token earlier); empty for a custom counter."""
        if self._custom is not None or self._starts is None:
            return []
        i = bisect_left(self._starts, start) + tokens
        return [self._starts[j] for j in (i, i - 1) if 0 <= j < len(self._starts)]

    def exact(self, start: int, end: int) -> int:
        if self._custom is not None:
            return self._custom(self.text[start:end])
        from engine.providers.embedders import count_tokens

        return count_tokens(self.text[start:end])

    def exact_many(self, spans: Sequence[tuple[int, int]]) -> list[int]:
        if self._custom is not None:
            return [self.exact(s, e) for s, e in spans]
        counts = [self.plan(s, e) if self._bounded(s, e) else -1 for s, e in spans]
        unsure = [i for i, n in enumerate(counts) if n < 0]
        if unsure:
            from engine.providers.local_embedder import count_tokens_batch

            texts = [self.text[spans[i][0]:spans[i][1]] for i in unsure]
            for i, n in zip(unsure, count_tokens_batch(texts), strict=True):
                counts[i] = n
        return counts

    def _bounded(self, start: int, end: int) -> bool:
        """True when the planned count of the span is exact: it starts and ends at ASCII
        whitespace (other characters Python calls spaces are dropped by BERT's normalizer
        and can glue two words together)."""
        text = self.text
        return (start == 0 or text[start - 1] in " \t\n\r") \
            and (end == len(text) or text[end] in " \t\n\r")


@dataclass(slots=True)
class _Piece:
    start: int
    end: int
    tokens: int
    atomic: bool  # fenced code or a heading: not split just to fill a chunk


class _Chunker:
    """Packs the blocks of one section into chunks of at most ``max_tokens``."""

    def __init__(self, counts: _Counts, max_tokens: int, overlap_tokens: int) -> None:
        self.counts = counts
        self.text = counts.text
        self.max_tokens = max_tokens
        # an overlap of half the budget or more would make chunks crawl forward
        self.overlap = max(0, min(overlap_tokens, max_tokens // 2))
        self.budget = max(1, max_tokens - self.overlap)  # leaves room for the overlap
        self.max_chars = max(64, max_tokens * _CHARS_PER_TOKEN_CAP)

    def chunk_section(self, blocks: list[Block]) -> list[tuple[int, int, int]]:
        """(start, end, exact tokens) of the chunks of one section, in order."""
        plan = self.counts.plan
        pieces = [_Piece(b.start, b.end, plan(b.start, b.end), b.fenced) for b in blocks]
        start, end = pieces[0].start, pieces[-1].end
        if sum(p.tokens for p in pieces) <= self.max_tokens and end - start <= self.max_chars:
            return self._verified([(start, end, start)])
        # a code block that fits the whole budget stays whole, at the cost of its overlap
        fitted = [small for piece in pieces
                  for small in self._fit(piece, self.max_tokens if piece.atomic else self.budget)]
        return self._verified(self._overlapped(self._pack(fitted)))

    # -- splitting -------------------------------------------------------------------------

    def _fit(self, piece: _Piece, budget: int, levels: tuple[str, ...] | None = None,
             count: Callable[[int, int], int] | None = None) -> list[_Piece]:
        """``piece`` cut at the coarsest boundaries that make every part fit ``budget``."""
        if piece.tokens <= budget and piece.end - piece.start <= self.max_chars:
            return [piece]
        count = count or self.counts.plan
        if levels is None:
            levels = _CODE_LEVELS if piece.atomic else _PROSE_LEVELS
        for depth, level in enumerate(levels):
            spans = self._cut(piece.start, piece.end, level)
            if len(spans) > 1:
                return [small for s, e in spans
                        for small in self._fit(_Piece(s, e, count(s, e), piece.atomic),
                                               budget, levels[depth + 1:], count)]
        return self._by_chars(piece, budget)

    def _cut(self, start: int, end: int, level: str) -> list[tuple[int, int]]:
        if level == "sentence":
            bounds = [m.end() for m in _SENTENCE_END.finditer(self.text, start, end)]
        else:
            bounds = [m.start() for m in _SEPARATORS[level].finditer(self.text, start, end)]
        spans: list[tuple[int, int]] = []
        prev = start
        for bound in [*bounds, end]:
            s, e = trim(self.text, prev, bound)
            if s < e:
                spans.append((s, e))
            prev = bound
        return spans

    def _by_chars(self, piece: _Piece, budget: int) -> list[_Piece]:
        """A run without whitespace, cut into the longest prefixes that fit (exact counts:
        a cut inside a word changes how the word is tokenized)."""
        exact = self.counts.exact
        out: list[_Piece] = []
        pos = piece.start
        while pos < piece.end:
            lo, hi = pos + 1, min(piece.end, pos + self.max_chars)
            # long punctuated runs (minified code): the token index guesses the cut, so
            # most pieces cost one exact count instead of a dozen
            for guess in self.counts.cut_after(pos, budget):
                if lo < guess < hi and exact(pos, guess) <= budget:
                    lo = hi = guess
                    break
            if lo < hi and exact(pos, hi) <= budget:
                lo = hi
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if exact(pos, mid) <= budget:
                    lo = mid
                else:
                    hi = mid - 1
            out.append(_Piece(pos, lo, exact(pos, lo), piece.atomic))
            pos = lo
        return out

    def _finer(self, piece: _Piece) -> list[_Piece]:
        """``piece`` cut at its coarsest prose boundaries, whether it fits or not."""
        for level in _PROSE_LEVELS:
            spans = self._cut(piece.start, piece.end, level)
            if len(spans) > 1:
                return [_Piece(s, e, self.counts.plan(s, e), False) for s, e in spans]
        return [piece]

    # -- packing ---------------------------------------------------------------------------

    def _pack(self, pieces: list[_Piece]) -> list[_Piece]:
        """Greedy packing into cores of at most ``budget`` tokens."""
        cores: list[_Piece] = []
        queue = deque(pieces)
        current: _Piece | None = None
        while queue:
            piece = queue.popleft()
            if current is None:
                current = _Piece(piece.start, piece.end, piece.tokens, False)
                continue
            if current.tokens + piece.tokens <= self.budget \
                    and piece.end - current.start <= self.max_chars:
                current.end = piece.end
                current.tokens += piece.tokens
                continue
            if not piece.atomic and current.tokens < self.budget // 2:
                # a mostly empty chunk takes the first sentences of the next paragraph
                finer = self._finer(piece)
                if len(finer) > 1:
                    queue.extendleft(reversed(finer))
                    continue
            cores.append(current)
            current = _Piece(piece.start, piece.end, piece.tokens, False)
        if current is not None:
            cores.append(current)
        return cores

    def _overlapped(self, cores: list[_Piece]) -> list[tuple[int, int, int]]:
        """(start, end, core start) per core, the start moved back into the previous core."""
        out: list[tuple[int, int, int]] = []
        for k, core in enumerate(cores):
            start = core.start
            if k and self.overlap:
                target = min(self.overlap, cores[k - 1].tokens // 2,
                             self.max_tokens - core.tokens)
                back = self._overlap_start(cores[k - 1], target) if target else None
                if back is not None and core.end - back <= self.max_chars:
                    start = back
            out.append((start, core.end, core.start))
        return out

    def _overlap_start(self, prev: _Piece, target: int) -> int | None:
        """The earliest word start in ``prev`` whose tail has at most ``target`` tokens."""
        starts = [m.start() for m in _WORD.finditer(self.text, prev.start, prev.end)]
        lo, hi = 1, len(starts)  # never the first word: a chunk must not repeat all of prev
        while lo < hi:
            mid = (lo + hi) // 2
            if self.counts.plan(starts[mid], prev.end) <= target:
                hi = mid
            else:
                lo = mid + 1
        return starts[lo] if lo < len(starts) else None

    def _verified(self, spans: list[tuple[int, int, int]]) -> list[tuple[int, int, int]]:
        """Exact counts; a span over the limit loses its overlap, then is re-packed."""
        out: list[tuple[int, int, int]] = []
        counts = self.counts.exact_many([(s, e) for s, e, _ in spans])
        for (start, end, core), tokens in zip(spans, counts, strict=True):
            if out and start < out[-1][0]:
                # the previous span was re-packed: an overlap into it could reach back
                # past the start of the last chunk
                start, tokens = core, self.counts.exact(core, end)
            if tokens <= self.max_tokens:
                out.append((start, end, tokens))
                continue
            if core > start and (tokens := self.counts.exact(core, end)) <= self.max_tokens:
                out.append((core, end, tokens))
                continue
            out.extend(self._repacked(core, end))
        return out

    def _repacked(self, start: int, end: int) -> list[tuple[int, int, int]]:
        """The span packed again counting every candidate exactly (rare: only when the
        planning counts were wrong, e.g. a counter that is not additive over words)."""
        exact = self.counts.exact
        pieces = self._fit(_Piece(start, end, exact(start, end), False), self.max_tokens,
                           count=exact)
        out: list[tuple[int, int, int]] = []
        i = 0
        while i < len(pieces):
            best = (pieces[i].start, pieces[i].end, pieces[i].tokens)
            j = i
            while j + 1 < len(pieces) and pieces[j + 1].end - pieces[i].start <= self.max_chars:
                tokens = exact(pieces[i].start, pieces[j + 1].end)
                if tokens > self.max_tokens:
                    break
                j += 1
                best = (pieces[i].start, pieces[j].end, tokens)
            out.append(best)
            i = j + 1
        return out
