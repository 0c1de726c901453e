"""Stored tool runs: writing them with the answer, reading them back, replaying them.

Runs are written in the answer's own transaction (with its citations and usage), so an
answer and its runs never disagree; a cancelled turn stores the call that was running as
``cancelled``. Arguments, result and error are ``EncryptedText`` columns: key rotation
finds them by type, and deleting a session cascades to its runs.

Replay: when a later question is asked with tools on, each earlier answer that used tools
is sent as its rounds (the assistant's ``tool_calls`` then one ``tool`` message per call,
the result clipped as it was sent) before the answer's text. Pairs are built from stored
runs only, so a call never lacks its answer.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.providers.base import ChatMessage, ToolCall
from engine.tools.results import clip, parse_arguments
from engine.types import ToolRunInfo, Usage


@dataclass
class RunRecord:
    """A tool run while its turn goes on (stored when the answer is)."""

    call_id: str
    server: str
    tool: str
    arguments: str
    round: int
    call_index: int
    status: str = "cancelled"  # until something else happens to it
    decision: str = "none"
    result: str | None = None
    error: str | None = None
    result_chars: int = 0
    truncated: bool = False
    started_at: datetime | None = None
    duration_ms: float | None = None


@dataclass
class RoundUsage:
    """The token counts of one model request of a turn."""

    prompt_tokens: int
    completion_tokens: int
    estimated: bool
    latency_ms: float
    first_token_ms: float | None = None


@dataclass
class ToolOutcome:
    """What the tool rounds of one turn produced, for the final write."""

    runs: list[RunRecord] = field(default_factory=list)
    rounds: list[RoundUsage] = field(default_factory=list)


def model_text(status: str, result: str | None, error: str | None) -> str:
    """What the model is told about a run."""
    if status == "ok":
        return result or "(the tool returned nothing)"
    if status == "error":
        return f"Error: {error or 'the tool failed'}"
    return error or f"The call was {status}."


def add_runs(s: AsyncSession, user_id: int, session_id: int | None, message_id: int | None,
             runs: Iterable[RunRecord], store_max_chars: int) -> None:
    """Stage ``runs`` in the caller's transaction."""
    s.add_all(m.ToolRun(
        user_id=user_id, session_id=session_id, message_id=message_id, round=r.round,
        call_index=r.call_index, call_id=r.call_id[:128], server=r.server[:200],
        tool=r.tool[:200], arguments=r.arguments,
        result=r.result[:store_max_chars] if r.result is not None else None,
        error=r.error, result_chars=r.result_chars, truncated=r.truncated, status=r.status,
        decision=r.decision[:16], started_at=r.started_at, duration_ms=r.duration_ms)
        for r in runs)


def to_info(row: m.ToolRun) -> ToolRunInfo:
    return ToolRunInfo(id=row.id, session_id=row.session_id, message_id=row.message_id,
                       round=row.round, call_index=row.call_index, call_id=row.call_id,
                       server=row.server, tool=row.tool, arguments=row.arguments,
                       result=row.result, error=row.error, status=row.status,
                       decision=row.decision, result_chars=row.result_chars,
                       truncated=row.truncated, started_at=row.started_at,
                       duration_ms=row.duration_ms, created_at=row.created_at)


async def list_runs(s: AsyncSession, user_id: int, *, session_id: int | None = None,
                    message_ids: Sequence[int] | None = None,
                    limit: int | None = None) -> list[ToolRunInfo]:
    """Runs of a user, oldest first (of a session, or of some messages)."""
    stmt = select(m.ToolRun).where(m.ToolRun.user_id == user_id)
    if session_id is not None:
        stmt = stmt.where(m.ToolRun.session_id == session_id)
    if message_ids is not None:
        if not message_ids:
            return []
        stmt = stmt.where(m.ToolRun.message_id.in_(list(message_ids)))
    if limit is not None:
        newest = stmt.order_by(m.ToolRun.id.desc()).limit(limit)
        return [to_info(r) for r in reversed((await s.scalars(newest)).all())]
    return [to_info(r) for r in (await s.scalars(stmt.order_by(m.ToolRun.id))).all()]


def replay(runs: Sequence[ToolRunInfo], wire_names: dict[str, str],
           max_result_chars: int) -> list[ChatMessage]:
    """The rounds of one stored answer as prompt messages (see the module docstring).
    ``wire_names`` maps canonical names to the names the model knows them by."""
    out: list[ChatMessage] = []
    rounds: dict[int, list[ToolRunInfo]] = {}
    for run in sorted(runs, key=lambda r: (r.round, r.call_index, r.id)):
        rounds.setdefault(run.round, []).append(run)
    for number in sorted(rounds):
        batch = rounds[number]
        calls = []
        for run in batch:
            arguments = run.arguments if parse_arguments(run.arguments)[1] is None else "{}"
            name = wire_names.get(f"{run.server}.{run.tool}", f"{run.server}__{run.tool}")
            calls.append(ToolCall(run.call_id, name, arguments))
        out.append(ChatMessage("assistant", "", tool_calls=tuple(calls)))
        for run in batch:
            text, _ = clip(model_text(run.status, run.result, run.error), max_result_chars)
            out.append(ChatMessage("tool", text, tool_call_id=run.call_id))
    return out


async def save_outcome(s: AsyncSession, engine: Any, outcome: ToolOutcome, *,
                       provider: str | None, model: str, session_id: int,
                       message_id: int) -> Usage:
    """Stage the runs and one usage row per round; the rounds' usage summed."""
    add_runs(s, engine.user_id, session_id, message_id, outcome.runs,
             engine.settings.tools.store_max_chars)
    total = Usage()
    for r in outcome.rounds:
        one = await engine.usage.record_in(
            s, "chat", provider=provider, model=model, prompt_tokens=r.prompt_tokens,
            completion_tokens=r.completion_tokens, estimated=r.estimated,
            latency_ms=r.latency_ms, first_token_ms=r.first_token_ms,
            session_id=session_id, message_id=message_id)
        total = Usage(total.prompt_tokens + one.prompt_tokens,
                      total.completion_tokens + one.completion_tokens, 0,
                      total.cost + one.cost, total.estimated or one.estimated)
    return total
