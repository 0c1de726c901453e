"""Usage records, reports by day, model and session, prices and budgets, on both backends."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from engine import Engine
from engine.db import models as m
from engine.db.coltypes import utcnow
from engine.errors import BudgetExceeded, UsageError
from engine.usage import days_ago, local_midnight, period_start

PRICED = {"kind": "openai", "base_url": "https://api.example.org/v1",
          "models": {"big": {"input_price": 2.0, "output_price": 8.0}}}


def priced(engine: Engine, **budget: object) -> None:
    """Give the engine a priced hosted model (and a budget) without reopening it."""
    from engine.config import ProviderSettings

    engine.settings.providers = {**engine.settings.providers,
                                 "hosted": ProviderSettings(**PRICED)}
    for key, value in budget.items():
        setattr(engine.settings.chat.budget, key, value)


async def test_cost_comes_from_the_price_table(engine: Engine) -> None:
    priced(engine)
    ledger = engine.usage
    assert ledger.cost("hosted", "big", prompt_tokens=1_000_000, completion_tokens=500_000) \
        == pytest.approx(6.0)
    assert ledger.cost("hosted", "big", embedding_tokens=1_000_000) == pytest.approx(2.0)
    assert ledger.cost("hosted", "unlisted", prompt_tokens=10**6) == 0.0
    assert ledger.cost(None, "extractive", prompt_tokens=10**6) == 0.0


async def test_explicit_prices_count_even_on_a_loopback_url(engine: Engine) -> None:
    from engine.config import ProviderSettings

    # a proxy on localhost (LiteLLM, an SSH tunnel) often bills per token upstream
    engine.settings.providers = {"proxy": ProviderSettings(
        kind="openai", base_url="http://127.0.0.1:4000/v1",
        models={"gpt": {"input_price": 1.0, "output_price": 1.0}})}
    assert engine.usage.cost("proxy", "gpt", prompt_tokens=10**6) == pytest.approx(1.0)


async def test_record_and_report_by_model_day_and_session(engine: Engine) -> None:
    priced(engine)
    ledger = engine.usage
    session = await engine.sessions.create("Budget talk")
    u1 = await ledger.record("chat", provider="hosted", model="big", prompt_tokens=1000,
                             completion_tokens=100, session_id=session.id, latency_ms=12.5,
                             first_token_ms=3.0)
    assert u1.cost == pytest.approx((1000 * 2 + 100 * 8) / 1e6)
    await ledger.record("chat", provider="hosted", model="big", prompt_tokens=10,
                        completion_tokens=5, estimated=True, session_id=session.id)
    await ledger.record("embedding", provider="local", model="all-minilm-l6-v2",
                        embedding_tokens=300, cost=0.0)

    by_model = {row.key: row for row in await ledger.report(by="model")}
    big = by_model["hosted/big"]
    assert (big.calls, big.prompt_tokens, big.completion_tokens) == (2, 1010, 105)
    assert big.estimated_calls == 1
    assert big.cost == pytest.approx((1010 * 2 + 105 * 8) / 1e6)
    assert by_model["local/all-minilm-l6-v2"].embedding_tokens == 300

    by_session = {row.key: row for row in await ledger.report(by="session")}
    assert by_session[str(session.id)].title == "Budget talk"
    assert by_session[str(session.id)].calls == 2
    assert by_session["-"].calls == 1

    days = await ledger.report(by="day")
    assert [row.key for row in days] == [local_midnight(days_ago(0)).date().isoformat()]
    assert days[0].calls == 3


async def test_report_since_leaves_out_older_records(engine: Engine) -> None:
    ledger = engine.usage
    await ledger.record("chat", provider="p", model="old", prompt_tokens=1)
    async with engine.db.write() as s:  # type: ignore[union-attr]
        await s.execute(update(m.TokenUsage).values(created_at=utcnow() - timedelta(days=40)))
    await ledger.record("chat", provider="p", model="new", prompt_tokens=2)
    recent = await ledger.report(by="model", since=days_ago(7))
    assert [row.key for row in recent] == ["p/new"]
    every_day = await ledger.report(by="day")
    assert len(every_day) == 2
    assert every_day[0].key < every_day[1].key


async def test_report_rejects_an_unknown_grouping(engine: Engine) -> None:
    with pytest.raises(UsageError):
        await engine.usage.report(by="week")  # type: ignore[arg-type]


async def test_budget_warns_before_a_call_that_would_pass_it(engine: Engine) -> None:
    priced(engine, daily=0.01, action="warn")
    ledger = engine.usage
    await ledger.record("chat", provider="hosted", model="big", prompt_tokens=4000)  # 0.008
    assert await ledger.check_budget(0.001) is None
    warning = await ledger.check_budget(0.005)
    assert warning is not None
    assert warning.period == "day"
    assert warning.spent == pytest.approx(0.008)
    assert "daily budget of 0.0100" in warning.message
    assert await ledger.check_budget(0.0) is None  # free calls never pass a limit


async def test_budget_refuses_when_configured_to(engine: Engine) -> None:
    priced(engine, monthly=0.01, action="refuse")
    await engine.usage.record("chat", provider="hosted", model="big", prompt_tokens=4000)
    with pytest.raises(BudgetExceeded) as caught:
        await engine.usage.check_budget(0.005)
    assert "monthly budget" in caught.value.message
    assert "chat.budget.monthly" in (caught.value.hint or "")


async def test_budget_periods_are_local_days_and_months() -> None:
    day, month = period_start("day"), period_start("month")
    assert day.hour == day.minute == 0 and day.tzinfo is not None
    assert month.day == 1 and month <= day
