"""Building the prompt of a turn within the model's context budget.

The prompt is: the system prompt, the conversation so far (oldest turns dropped first when
it does not fit), then the question, preceded by the retrieved sources numbered
``[1]..[k]`` with their file, page and lines. Sources travel with the question rather than
in the system prompt: small local models follow instructions next to the question better,
and earlier turns' sources are not repeated in the history (only their text is).

The budget is the model's context window minus the room kept for the answer
(``chat.max_tokens``, else a quarter of the window up to 2048 tokens). The system prompt and
the question must fit, or the turn fails with ``ContextTooLong`` before any call. Sources
come next in rank order, skipping any that no longer fit, but the history keeps a claim on up
to a quarter of what is left; the history then fills the rest, newest first.

Token counts are estimates (no model tokenizer is available for arbitrary servers): about
four characters a token for ASCII text and more tokens per character for other scripts, so
the estimate errs on the safe side for non-Latin text.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from engine.chat.citations import NumberedSource, location
from engine.errors import ContextTooLong
from engine.providers.base import ChatMessage, SourceText
from engine.types import Message, SearchHit

DEFAULT_SYSTEM_PROMPT = (
    "You are Parley, a careful assistant that answers from the user's documents.\n"
    "When sources are given, they are numbered [1], [2], ... Base your answer on them and "
    "cite every claim that rests on a source with its number in square brackets right after "
    "the claim, like [1] or [1][3]. Cite only the numbers you were given; never invent one. "
    "If the sources do not contain the answer, say so plainly; if you then answer from "
    "general knowledge, say that you do.\n"
    "Answer in the language of the question. Be concise.")
MESSAGE_OVERHEAD = 4  # role and separators of one chat message, in tokens
MAX_ANSWER_RESERVE = 2048
HISTORY_SHARE = 4  # the history may claim up to 1/HISTORY_SHARE of the room after the question


def estimate_tokens(text: str) -> int:
    """A conservative token estimate: ASCII at 4 characters a token, other text at 1.5."""
    ascii_chars = sum(1 for ch in text if ch < "\x80")
    return math.ceil(ascii_chars / 4 + (len(text) - ascii_chars) / 1.5)


def answer_reserve(context_window: int, max_tokens: int | None) -> int:
    """Tokens kept free for the answer."""
    if max_tokens is not None:
        return min(max_tokens, context_window // 2)
    return min(MAX_ANSWER_RESERVE, context_window // 4)


@dataclass(frozen=True, slots=True)
class Prompt:
    """A built prompt: what the model receives and what its markers mean."""

    messages: tuple[ChatMessage, ...]
    sources: tuple[NumberedSource, ...]
    tokens: int  # estimated prompt tokens
    dropped_sources: int = 0  # retrieved but left out for lack of room
    dropped_history: int = 0  # earlier messages left out for lack of room

    def source_texts(self) -> list[SourceText]:
        """The sources as the extractive provider takes them."""
        return [SourceText(s.marker, s.hit.text, s.hit.path) for s in self.sources]


def source_block(marker: int, hit: SearchHit) -> str:
    """One numbered source as the model sees it: a header line, then the passage."""
    header = f"[{marker}] {location(hit.path, hit.page, hit.line_start, hit.line_end)}"
    if hit.heading:
        header += f" ({hit.heading})"
    return f"{header}\n{hit.text.strip()}"


def question_message(question: str, blocks: Sequence[str]) -> str:
    """The final user message: the numbered sources, then the question."""
    if not blocks:
        return question
    sources = "\n\n".join(blocks)
    return (f"Sources:\n\n{sources}\n\n"
            f"Question: {question}\n"
            "(Cite the sources you use by their numbers in square brackets.)")


def _history_messages(history: Sequence[Message],
                      rounds: Mapping[int, Sequence[ChatMessage]]) -> list[list[ChatMessage]]:
    """The history as groups kept or dropped whole: a message, or an answer preceded by
    its tool rounds (a call must never lose its result)."""
    out: list[list[ChatMessage]] = []
    for message in history:
        if message.role not in ("user", "assistant"):
            continue
        before = list(rounds.get(message.id, ()))
        if getattr(message.content, "failed", False) or not message.content.strip():
            if before:  # the tools ran, the text failed: keep the pairs, and say so
                out.append([*before, ChatMessage("assistant", "(no answer text)")])
            continue  # unreadable (another key), or an answer that failed before any text
        out.append([*before, ChatMessage(message.role, message.content)])
    return out


def fixed_tokens(system_prompt: str, question: str, pinned: Sequence[SearchHit] = ()) -> int:
    """Tokens a turn needs whatever else fits: system prompt, question, attached sources."""
    blocks = [source_block(n, hit) for n, hit in enumerate(pinned, start=1)]
    return (estimate_tokens(system_prompt) + estimate_tokens(question_message(question, ["x"]))
            + sum(estimate_tokens(b) + 1 for b in blocks) + 2 * MESSAGE_OVERHEAD)


def _cost(message: ChatMessage) -> int:
    return (estimate_tokens(message.content) + MESSAGE_OVERHEAD
            + sum(estimate_tokens(c.name + c.arguments) for c in message.tool_calls))


def build_prompt(*, system_prompt: str, question: str, history: Sequence[Message] = (),
                 hits: Sequence[SearchHit] = (), context_window: int = 8192,
                 max_tokens: int | None = None, pinned: Sequence[SearchHit] = (),
                 tool_rounds: Mapping[int, Sequence[ChatMessage]] | None = None) -> Prompt:
    """The messages for one turn (see the module docstring for what is kept and dropped).
    ``tool_rounds``: by answer id, the tool calls and results replayed before its text.

    ``pinned`` sources (attachments) are numbered first and always included. Raises
    ``ContextTooLong`` when the system prompt, the question and the pinned sources alone do
    not fit.
    """
    reserve = answer_reserve(context_window, max_tokens)
    room = context_window - reserve
    fixed = fixed_tokens(system_prompt, question, pinned)
    if fixed > room:
        raise ContextTooLong(
            f"the question and system prompt need about {fixed} tokens, but the model's context "
            f"window is {context_window} tokens with {reserve} kept for the answer",
            "shorten the question or the system prompt, or set context_window for this model "
            "under providers.<name>.models")
    past = _history_messages(history, tool_rounds or {})
    past_tokens = [sum(_cost(m) for m in group) for group in past]
    left = room - fixed
    history_claim = min(sum(past_tokens), left // HISTORY_SHARE)

    blocks = [source_block(n, hit) for n, hit in enumerate(pinned, start=1)]
    numbered = [NumberedSource(n, hit) for n, hit in enumerate(pinned, start=1)]
    source_room = left - history_claim
    for hit in hits:
        block = source_block(len(numbered) + 1, hit)
        cost = estimate_tokens(block) + 1
        if cost <= source_room:
            source_room -= cost
            blocks.append(block)
            numbered.append(NumberedSource(len(numbered) + 1, hit))
    left -= sum(estimate_tokens(b) + 1 for b in blocks[len(pinned):])

    kept: list[ChatMessage] = []
    groups = 0
    for group, cost in zip(reversed(past), reversed(past_tokens), strict=True):
        if cost > left:
            break  # oldest first: once one does not fit, every older one goes too
        kept[:0] = group
        left -= cost
        groups += 1
    dropped = len(past) - groups

    final = question_message(question, blocks)
    messages = (ChatMessage("system", system_prompt), *kept, ChatMessage("user", final))
    tokens = sum(_cost(m) for m in messages)
    return Prompt(messages=messages, sources=tuple(numbered), tokens=tokens,
                  dropped_sources=len(hits) + len(pinned) - len(numbered),
                  dropped_history=dropped)
