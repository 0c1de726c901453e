"""Usage: token counts and cost of a call or a turn, usage reports, and the warning of a
spending limit (``engine.usage``)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts and cost of one model call or of a whole turn."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedding_tokens: int = 0
    cost: float = 0.0
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Token usage and cost summed over one day, model or session."""

    key: str  # "2025-06-01", "provider/model" or a session id ("-" when none or deleted)
    calls: int
    prompt_tokens: int
    completion_tokens: int
    embedding_tokens: int
    cost: float
    estimated_calls: int = 0  # calls whose counts are estimates
    title: str | None = None  # the session's title when grouped by session


@dataclass(frozen=True, slots=True)
class BudgetWarning:
    """Sent before the model is called when the call would pass a spending limit that only
    warns (a limit that refuses raises ``BudgetExceeded`` instead)."""

    message: str
    period: str  # "day" | "month"
    spent: float  # already spent in the period
    estimate: float  # estimated cost of this call
    limit: float
