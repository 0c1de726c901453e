"""Shared by the tool tests: an engine whose model is the test server, an approver that
records what it was asked, and helpers to run a turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from engine import Engine, Settings
from engine.config import ProviderSettings
from engine.types import ApprovalRequest, Delta, ToolCallFinished, ToolCallStarted
from tests.conftest import migrate
from tests.support.openai_server import OpenAITestServer


def configure(settings: Settings, server: OpenAITestServer, **tools: Any) -> Settings:
    settings.providers = {"test": ProviderSettings(**server.provider_config(
        timeout=20.0, max_retries=0,
        models={"test-model": {"context_window": 16384, "input_price": 3.0,
                               "output_price": 15.0}}))}
    settings.chat.provider = "test"
    settings.chat.model = "test-model"
    settings.tools.enabled = True
    for key, value in tools.items():
        setattr(settings.tools, key, value)
    return settings


async def open_engine(settings: Settings) -> Engine:
    await migrate(settings)
    engine = Engine(settings)
    await engine.open()
    return engine


class Approver:
    """Answers every question with ``answer`` and keeps the requests."""

    def __init__(self, answer: str = "once") -> None:
        self.answer = answer
        self.asked: list[ApprovalRequest] = []

    async def __call__(self, request: ApprovalRequest) -> str:
        self.asked.append(request)
        return self.answer


async def collect(events: AsyncIterator[Any]) -> list[Any]:
    return [event async for event in events]


def text_of(events: list[Any]) -> str:
    return "".join(e.text for e in events if isinstance(e, Delta))


def finished(events: list[Any]) -> list[ToolCallFinished]:
    """Finished calls in the model's order (the calls of a round end in any order)."""
    order = {(e.round, e.call_id): i for i, e in enumerate(
        e for e in events if isinstance(e, ToolCallStarted))}
    done = [e for e in events if isinstance(e, ToolCallFinished)]
    return sorted(done, key=lambda e: order.get((e.round, e.call_id), len(order)))


def call(name: str, call_id: str | None = None, **arguments: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"name": name, "arguments": arguments}
    if call_id:
        out["id"] = call_id
    return out
