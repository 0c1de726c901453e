"""The extractive answerer: cited answers with no model at all.

It answers the last user message with the sentences of the retrieved sources that share the
most words with it, each followed by its source's marker (``[n]``), under a first line that
says plainly this is an extractive answer. With no sources it says nothing relevant was found
and how to add documents.

Scoring is lexical and pure Python: lowercased words, stop words dropped, a crude suffix
strip, each shared word weighted by its rarity among the candidate sentences (an IDF), and a
small bonus for better-ranked sources so retrieval order breaks ties.

It reports no ``StreamUsage``: no model ran, so there are no counts to report. The chat layer
then records an estimate marked as estimated, at no cost (``is_local`` is True).
"""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import AsyncIterator, Sequence

from engine.providers.base import (
    ChatMessage,
    ProviderEvent,
    SourceText,
    StreamEnd,
    TextDelta,
)

HEADER = "Extractive answer (no model configured): the most relevant passages from your documents."
NOTHING_FOUND = ("Extractive answer (no model configured): I found nothing relevant in your "
                 "documents for this question. Add documents with `parley ingest PATH`, "
                 "or configure a model provider to chat without sources.")
MAX_SENTENCES = 4
PER_SOURCE = 2
MAX_CHARS = 300
# Sentences far weaker than the best one match on an incidental word ("file" in "key file").
RELATIVE_FLOOR = 0.4

_STOP_WORDS = frozenset("""
a about above after again against all am an and any are as at be because been before being
below between both but by can could did do does doing down during each few for from further
had has have having he her here hers herself him himself his how i if in into is it its
itself just me more most my myself no nor not now of off on once only or other our ours out
over own same she should so some such than that the their theirs them themselves then there
these they this those through to too under until up very was we were what when where which
while who whom why will with would you your yours yourself yourselves tell explain describe
please give show much many also
""".split())
_WORD = re.compile(r"\w+")
# A sentence ends at . ! ? (optionally closed by a quote or bracket) before whitespace, or
# at a line break that separates blocks (headings, list items, paragraphs).
# Headings name a topic but state nothing: never an answer sentence.
_HEADING = re.compile(r"^[ \t]{0,3}#{1,6}[ \t].*$", re.MULTILINE)
_SENTENCE_END = re.compile(
    r"(?<=[.!?])\s+|(?<=[.!?][\"')\]])\s+|\n\s*\n|\n(?=\s*(?:[-*#>]|\d+[.)])\s)")


class ExtractiveProvider:
    """A ``ChatProvider`` that needs no model (see the module docstring)."""

    kind = "extractive"
    is_local = True

    def __init__(self, name: str = "extractive") -> None:
        self.name = name

    async def list_models(self) -> list[str]:
        """The one pseudo-model: ``["extractive"]``."""
        return ["extractive"]

    async def aclose(self) -> None:
        """Nothing to release."""

    async def stream(self, messages: Sequence[ChatMessage], *, model: str = "extractive",
                     temperature: float | None = None, max_tokens: int | None = None,
                     sources: Sequence[SourceText] = (),
                     searched: str | None = None,
                     tools: Sequence[object] = ()) -> AsyncIterator[ProviderEvent]:
        """Answer the last user message from ``sources``; ``model``, sampling and ``tools``
        are ignored (it calls no tools). ``searched`` says what was searched, for the
        answer that found nothing."""
        question = next((m.content for m in reversed(messages) if m.role == "user"), "")
        picked = extract(question, sources)
        if not picked:
            yield TextDelta(NOTHING_FOUND if searched is None else NOTHING_FOUND.replace(
                "in your documents for this question", f"for this question in {searched}"))
            yield StreamEnd("stop")
            return
        yield TextDelta(HEADER + "\n\n")
        for sentence, marker in picked:
            await asyncio.sleep(0)  # a long answer must not starve the event loop
            yield TextDelta(f"- {sentence} [{marker}]\n")
        yield StreamEnd("stop")


def terms(text: str) -> list[str]:
    """Lowercased content words of ``text``, crudely stemmed (``indexing`` -> ``index``)."""
    return [stem(word) for word in _WORD.findall(text.lower())
            if word not in _STOP_WORDS and (len(word) > 1 or word.isdigit())]


def stem(word: str) -> str:
    """One common English suffix off, then a final ``e``: enough to match word forms."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    for suffix in ("ing", "ed", "ly", "es", "s"):
        if not word.endswith(suffix) or len(word) - len(suffix) < 3:
            continue
        if suffix == "es" and word[-3] not in "sxz" and not word.endswith(("ches", "shes")):
            continue  # "notes" loses only its "s"
        if suffix == "s" and word.endswith(("ss", "us")):
            break
        word = word[:-len(suffix)]
        break
    return word[:-1] if len(word) > 3 and word.endswith("e") else word


def sentences(text: str) -> list[str]:
    """``text`` cut into sentences, whitespace collapsed, overlong ones shortened."""
    out: list[str] = []
    for piece in _SENTENCE_END.split(_HEADING.sub("", text)):
        sentence = " ".join(piece.split()).lstrip("-*#> ").strip()
        if len(sentence) < 12:  # stray headings, page numbers and list bullets
            continue
        if len(sentence) > MAX_CHARS:
            sentence = sentence[:MAX_CHARS].rsplit(" ", 1)[0] + " …"
        out.append(sentence)
    return out


def extract(question: str, sources: Sequence[SourceText],
            limit: int = MAX_SENTENCES) -> list[tuple[str, int]]:
    """The best (sentence, marker) pairs for ``question``, best first.

    When no sentence shares a word with the question (or the question has none), the first
    sentence of each of the top sources stands in: retrieval judged them relevant.
    """
    candidates = [(rank, src.marker, s, set(terms(s)))
                  for rank, src in enumerate(sources) for s in sentences(src.text)]
    if not candidates:
        return []
    wanted = set(terms(question))
    df: dict[str, int] = {}
    for *_, words in candidates:
        for word in words & wanted:
            df[word] = df.get(word, 0) + 1
    n = len(candidates)
    scored: list[tuple[float, int, int, str]] = []
    for position, (rank, marker, sentence, words) in enumerate(candidates):
        overlap = sum(math.log(1 + n / df[w]) for w in words & wanted)
        if overlap:
            scored.append((overlap + 0.1 / (rank + 1), position, marker, sentence))
    if not scored:
        seen: dict[int, str] = {}
        for _, marker, sentence, _ in candidates:
            seen.setdefault(marker, sentence)
        return [(sentence, marker) for marker, sentence in list(seen.items())[:min(limit, 3)]]
    scored.sort(key=lambda item: (-item[0], item[1]))
    picked: list[tuple[str, int]] = []
    per_source: dict[int, int] = {}
    floor = scored[0][0] * RELATIVE_FLOOR
    for score, _, marker, sentence in scored:
        if score < floor:
            break
        if per_source.get(marker, 0) >= PER_SOURCE or (sentence, marker) in picked:
            continue
        per_source[marker] = per_source.get(marker, 0) + 1
        picked.append((sentence, marker))
        if len(picked) == limit:
            break
    return picked
