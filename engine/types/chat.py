"""The events of a chat turn (``engine.chat``). A turn streams ``Searched``, then perhaps
``BudgetWarning`` (in ``usage``) and ``NothingFound``, the tool events (in ``tools``), the
answer as ``Delta`` pieces, and last ``Sources`` and ``Done``."""

from __future__ import annotations

from dataclasses import dataclass, field

from engine.types.citations import Citation
from engine.types.session_setup import ChatScope
from engine.types.usage import Usage


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of answer text as it streams in."""

    text: str


@dataclass(frozen=True, slots=True)
class Sources:
    """The sources an answer cited (sent once the answer is complete)."""

    citations: tuple[Citation, ...]
    unknown_markers: tuple[int, ...] = ()  # markers in the answer that name no source


@dataclass(frozen=True, slots=True)
class Done:
    """The end of a turn: where it was stored, how it ended, what it cost."""

    session_id: int
    message_id: int
    status: str  # "complete" | "interrupted" | "error"
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class Searched:
    """Sent first in a turn: which documents it searches (``first``: the session's first
    question, when front ends say so)."""

    scope: ChatScope
    first: bool


@dataclass(frozen=True, slots=True)
class NothingFound:
    """The search found no source for the question (sent before the answer streams)."""

    scope: ChatScope
