"""Token usage and cost: one record per model call and per embedding batch.

Cost comes from the price table in the config (``providers.<name>.models.<model>``, prices
per million tokens; embedding tokens are charged at the input price). Prices default to 0,
so a local server costs nothing unless prices are set for it on purpose. Configured prices
are always honoured, even for a loopback URL: a proxy on ``localhost`` (LiteLLM, an SSH
tunnel) often forwards to a hosted model that bills every token.

Budgets (``chat.budget``) count days and months in local time. ``check_budget`` runs
before a call with the call's estimated cost: passing a limit warns (a ``BudgetWarning``
to show) or refuses (``BudgetExceeded``), as ``chat.budget.action`` says.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime, time, timedelta
from typing import TYPE_CHECKING, Literal

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.config import ModelSettings
from engine.db import models as m
from engine.errors import BudgetExceeded, UsageError
from engine.providers.registry import model_settings
from engine.types import BudgetWarning, Usage, UsageRow

if TYPE_CHECKING:
    from engine.facade import Engine

GroupBy = Literal["day", "model", "session"]
PER_MILLION = 1_000_000


def local_midnight(day: date) -> datetime:
    """The start of ``day`` in local time, as an aware datetime."""
    return datetime.combine(day, time.min).astimezone()


def period_start(period: str, now: datetime | None = None) -> datetime:
    """The start of the current local ``"day"`` or ``"month"``."""
    today = (now or datetime.now()).astimezone().date()
    return local_midnight(today if period == "day" else today.replace(day=1))


class UsageLedger:
    """Records, reports and budget checks for one user."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def prices(self, provider: str | None, model: str | None) -> ModelSettings:
        """Context window and prices of ``model`` on ``provider`` (defaults when unlisted)."""
        return model_settings(self.engine.settings, provider, model)

    def cost(self, provider: str | None, model: str | None, *, prompt_tokens: int = 0,
             completion_tokens: int = 0, embedding_tokens: int = 0) -> float:
        """What these tokens cost on ``provider``/``model`` (0 without configured prices)."""
        price = self.prices(provider, model)
        return ((prompt_tokens + embedding_tokens) * price.input_price
                + completion_tokens * price.output_price) / PER_MILLION

    async def record(self, kind: str, *, provider: str | None, model: str | None,
                     prompt_tokens: int = 0, completion_tokens: int = 0,
                     embedding_tokens: int = 0, estimated: bool = False,
                     cost: float | None = None, latency_ms: float | None = None,
                     first_token_ms: float | None = None, session_id: int | None = None,
                     message_id: int | None = None) -> Usage:
        """Store one record (``kind`` ``"chat"`` or ``"embedding"``) in its own transaction.

        ``cost`` None computes it from the price table.
        """
        async with self.engine._require_db().write() as s:
            return await self.record_in(
                s, kind, provider=provider, model=model, prompt_tokens=prompt_tokens,
                completion_tokens=completion_tokens, embedding_tokens=embedding_tokens,
                estimated=estimated, cost=cost, latency_ms=latency_ms,
                first_token_ms=first_token_ms, session_id=session_id, message_id=message_id)

    async def record_in(self, s: AsyncSession, kind: str, *, provider: str | None,
                        model: str | None, prompt_tokens: int = 0, completion_tokens: int = 0,
                        embedding_tokens: int = 0, estimated: bool = False,
                        cost: float | None = None, latency_ms: float | None = None,
                        first_token_ms: float | None = None, session_id: int | None = None,
                        message_id: int | None = None) -> Usage:
        """``record`` inside the caller's transaction."""
        if kind not in ("chat", "embedding"):
            raise ValueError(f"unknown usage kind {kind!r}")
        if cost is None:
            cost = self.cost(provider, model, prompt_tokens=prompt_tokens,
                             completion_tokens=completion_tokens,
                             embedding_tokens=embedding_tokens)
        s.add(m.TokenUsage(
            user_id=self.engine.user_id, session_id=session_id, message_id=message_id,
            kind=kind, provider=provider, model=model, prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens, embedding_tokens=embedding_tokens,
            estimated=estimated, cost=cost, latency_ms=latency_ms,
            first_token_ms=first_token_ms))
        return Usage(prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                     embedding_tokens=embedding_tokens, cost=cost, estimated=estimated)

    async def spent(self, since: datetime) -> float:
        """Total cost recorded since ``since``."""
        async with self.engine._require_db().read() as s:
            total = await s.scalar(select(func.coalesce(func.sum(m.TokenUsage.cost), 0.0)).where(
                m.TokenUsage.user_id == self.engine.user_id, m.TokenUsage.created_at >= since))
        return float(total or 0.0)

    async def check_budget(self, estimate: float) -> BudgetWarning | None:
        """Check a call that should cost about ``estimate`` against ``chat.budget``.

        Returns a warning to show, or None; raises ``BudgetExceeded`` when the budget refuses.
        A call that costs nothing never passes a limit.
        """
        budget = self.engine.settings.chat.budget
        if estimate <= 0:
            return None
        for period, limit in (("day", budget.daily), ("month", budget.monthly)):
            if limit is None:
                continue
            spent = await self.spent(period_start(period))
            if spent + estimate <= limit:
                continue
            name = "daily" if period == "day" else "monthly"
            when = "today" if period == "day" else "this month"
            message = (f"this call (about {money(estimate)}) would bring spending {when} to "
                       f"{money(spent + estimate)}, past the {name} budget of {money(limit)}")
            if budget.action == "refuse":
                raise BudgetExceeded(message, f"raise chat.budget.{name}, use a local model, "
                                              "or set chat.budget.action to warn")
            return BudgetWarning(message, period, spent, estimate, limit)
        return None

    async def report(self, by: GroupBy = "day", since: date | None = None) -> list[UsageRow]:
        """Usage summed per local day (oldest first), per model or per session (costliest
        first), from ``since`` (a local date) on."""
        if by not in ("day", "model", "session"):
            raise UsageError(f"cannot group usage by {by!r}", "use day, model or session")
        u = m.TokenUsage
        where = [u.user_id == self.engine.user_id]
        if since is not None:
            where.append(u.created_at >= local_midnight(since))
        sums = (func.count(u.id), func.coalesce(func.sum(u.prompt_tokens), 0),
                func.coalesce(func.sum(u.completion_tokens), 0),
                func.coalesce(func.sum(u.embedding_tokens), 0),
                func.coalesce(func.sum(u.cost), 0.0),
                func.coalesce(func.sum(case((u.estimated, 1), else_=0)), 0))
        async with self.engine._require_db().read() as s:
            if by == "day":
                rows = (await s.execute(select(u.created_at, u.prompt_tokens,
                                               u.completion_tokens, u.embedding_tokens, u.cost,
                                               u.estimated).where(*where))).all()
                return _by_day(rows)
            if by == "model":
                grouped = (await s.execute(select(u.provider, u.model, *sums).where(*where)
                                           .group_by(u.provider, u.model))).all()
                out = [_row(f"{p}/{mo}" if p else (mo or "-"), *rest)
                       for p, mo, *rest in grouped]
            else:
                grouped = (await s.execute(select(u.session_id, *sums).where(*where)
                                           .group_by(u.session_id))).all()
                ids = [sid for sid, *_ in grouped if sid is not None]
                titles = dict((await s.execute(select(m.Session.id, m.Session.title).where(
                    m.Session.id.in_(ids), m.Session.user_id == self.engine.user_id))).all()
                              ) if ids else {}
                out = [_row(str(sid) if sid is not None else "-", *rest,
                            title=titles.get(sid)) for sid, *rest in grouped]
        return sorted(out, key=lambda r: (-r.cost, -r.calls, r.key))


def _row(key: str, calls: float, prompt: float, completion: float, embedding: float,
         cost: float, estimated: float, *, title: str | None = None) -> UsageRow:
    return UsageRow(key=key, calls=int(calls), prompt_tokens=int(prompt),
                    completion_tokens=int(completion), embedding_tokens=int(embedding),
                    cost=float(cost), estimated_calls=int(estimated), title=title)


def _by_day(rows: Iterable[tuple[datetime, int, int, int, float, bool]]) -> list[UsageRow]:
    # Local days cannot be computed portably in SQL (SQLite has no time zones), and a
    # user's usage is thousands of rows, not millions.
    days: dict[date, list[float]] = {}
    for created, prompt, completion, embedding, cost, estimated in rows:
        acc = days.setdefault(created.astimezone().date(), [0, 0, 0, 0, 0.0, 0])
        for index, value in enumerate((1, prompt, completion, embedding, cost, int(estimated))):
            acc[index] += value
    return [_row(day.isoformat(), *acc) for day, acc in sorted(days.items())]


def money(amount: float) -> str:
    """A cost for people, in the price table's currency: four decimals below 1, else two."""
    return f"{amount:.4f}" if amount < 1 else f"{amount:,.2f}"


def days_ago(days: int) -> date:
    """The local date ``days`` days before today."""
    return datetime.now().astimezone().date() - timedelta(days=days)
