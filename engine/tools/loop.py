"""The rounds of a turn with tools: stream, decide, call, answer, until the model answers.

Each round streams one model request with the tools offered. Text streams to the user as
it comes (a new round's text starts on a new paragraph). When the model asks for calls,
each is decided in the model's order (deny, allow, approval, the taint rule: questions
come one at a time), and each approved call starts at once, so the calls of a round run
at the same time (``tools.parallel_calls``), each within its timeout. The answers go back
in the model's order, one ``tool`` message per call id, whatever order the calls ended in. Limits: ``max_rounds``
(the last request goes without tools, so it must answer), ``max_calls`` per answer, and
the loop guard (the same call more than ``max_repeats`` times is refused). The budget is
checked before every round after the first, counting the rounds already made.

Refusals and failures are results the model reads, never errors of the turn: a denied
call tells it why, an unknown tool lists the real ones, invalid JSON is quoted back.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.chat.prompt import MESSAGE_OVERHEAD, estimate_tokens
from engine.db.coltypes import utcnow
from engine.providers.base import ChatMessage, StreamUsage, TextDelta, ToolCall, ToolCalls, ToolSpec
from engine.tools.builtin import SourceBook
from engine.tools.policy import Policy, taint_reason
from engine.tools.results import canonical_arguments, clip, parse_arguments, pretty
from engine.tools.servers import Tool
from engine.tools.store import RoundUsage, RunRecord, ToolOutcome, model_text
from engine.types import ApprovalRequest, ToolCallFinished, ToolCallStarted

if TYPE_CHECKING:
    from engine.facade import Engine
    from engine.providers.base import ChatProvider
    from engine.tools.toolbox import Toolbox

Approver = Callable[[ApprovalRequest], Awaitable[str]]
ANSWERS = ("once", "session", "always", "deny")


@dataclass
class ToolTurn:
    """The tools of one turn: what is offered, the policy, who answers questions."""

    toolbox: Toolbox
    policy: Policy
    tools: dict[str, Tool]  # by wire name
    approver: Approver | None
    session_id: int
    collections: tuple[str, ...]
    book: SourceBook
    history_servers: set[str] = field(default_factory=set)
    always: set[str] | None = None  # "always" answers, read once per turn
    problems: list[str] = field(default_factory=list)
    outcome: ToolOutcome = field(default_factory=ToolOutcome)

    def specs(self) -> list[ToolSpec]:
        return [ToolSpec(wire, t.description, t.parameters) for wire, t in self.tools.items()]


def _prompt_tokens(messages: Sequence[ChatMessage]) -> int:
    return sum(estimate_tokens(m.content) + MESSAGE_OVERHEAD
               + sum(estimate_tokens(c.name + c.arguments) for c in m.tool_calls)
               for m in messages)


async def run_rounds(engine: Engine, tt: ToolTurn, provider: ChatProvider,
                     messages: Sequence[ChatMessage], *, provider_name: str | None, model: str,
                     temperature: float | None, max_tokens: int | None,
                     ) -> AsyncIterator[Any]:
    """Stream the rounds (see the module docstring). Yields ``TextDelta`` for answer text,
    ``ToolCallStarted``/``ToolCallFinished`` per call and ``BudgetWarning`` before a round
    that would pass a warning limit; fills ``tt.outcome`` as it goes."""
    settings = engine.settings.tools
    prompt = list(messages)
    calls_made = 0
    seen: Counter[str] = Counter()
    wrote_text = False
    for number in range(1, settings.max_rounds + 1):
        last = number == settings.max_rounds or calls_made >= settings.max_calls
        if number > 1:
            warning = await _check_budget(engine, tt.outcome, prompt, provider_name, model,
                                          max_tokens)
            if warning is not None:
                yield warning
        started, first = time.monotonic(), None
        text: list[str] = []
        usage: StreamUsage | None = None
        calls: tuple[ToolCall, ...] = ()
        finished = False
        stream = provider.stream(prompt, model=model, temperature=temperature,
                                 max_tokens=max_tokens, tools=() if last else tt.specs())
        try:
            async with contextlib.aclosing(stream) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        if first is None:
                            first = time.monotonic()
                            if wrote_text and number > 1:
                                yield TextDelta("\n\n")
                        text.append(event.text)
                        wrote_text = True
                        yield event
                    elif isinstance(event, StreamUsage):
                        usage = event
                    elif isinstance(event, ToolCalls):
                        calls = event.calls
            finished = True
        finally:
            # A cut-off round is billed too: estimated from what arrived.
            tt.outcome.rounds.append(_round_usage(usage, prompt, "".join(text), calls,
                                                  started, first, reached=finished or
                                                  bool(text)))
        if not calls or last:
            return
        batch: list[tuple[ToolCall, RunRecord, Tool | None, dict[str, Any] | None, str | None]]
        batch = []
        for index, call in enumerate(calls):
            tool = tt.tools.get(call.name)
            args, problem = parse_arguments(call.arguments)
            record = RunRecord(call.id, tool.server if tool else "?",
                               tool.name if tool else call.name, call.arguments, number, index)
            tt.outcome.runs.append(record)
            batch.append((call, record, tool, args, problem))
        # The arguments go back as sent, or as {} when they were not JSON: servers that
        # render the history with a template parse them.
        prompt.append(ChatMessage("assistant", "".join(text), tool_calls=tuple(
            ToolCall(c.id, c.name, c.arguments if p is None else "{}")
            for c, _, _, _, p in batch)))
        tasks: dict[asyncio.Task[None], tuple[ToolCall, RunRecord]] = {}
        try:
            for call, record, tool, args, problem in batch:
                calls_made += 1
                question = await _decide(tt, call, record, tool, problem,
                                         over_limit=calls_made > settings.max_calls, seen=seen)
                yield _started(call, record)
                if question is not None and tool is not None:
                    try:
                        record.decision, refusal = await _ask(tt, tool, question)
                    except asyncio.CancelledError:
                        record.error = ("The answer was stopped by the user while the call "
                                        "awaited approval.")
                        raise
                    if refusal is not None:
                        record.status, record.error = "denied", refusal
                if record.status == "cancelled" and tool is not None and args is not None:
                    # Approved: it runs now, while later calls are still being decided.
                    task = asyncio.create_task(_execute(tt, tool, args, record))
                    tasks[task] = (call, record)
                    if not settings.parallel_calls:
                        await asyncio.wait([task])
                else:
                    yield _finished(call, record)
                for task in [t for t in tasks if t.done()]:
                    yield _finished(*_done(tasks, task))
            while tasks:
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                for task in sorted(done, key=lambda t: tasks[t][1].call_index):
                    yield _finished(*_done(tasks, task))
        finally:
            await _cancel(tasks)
        # Answers go back in the model's call order, whatever order the calls ended in.
        for call, record, _tool, _args, _problem in batch:
            prompt.append(ChatMessage("tool", clip(model_text(record.status, record.result,
                                                              record.error),
                                                   settings.max_result_chars)[0],
                                      tool_call_id=call.id))


def _done(tasks: dict[asyncio.Task[None], tuple[ToolCall, RunRecord]],
          task: asyncio.Task[None]) -> tuple[ToolCall, RunRecord]:
    """Take a finished call out of ``tasks``; an unexpected failure ends the turn."""
    found = tasks.pop(task)
    task.result()
    return found


async def _cancel(tasks: dict[asyncio.Task[None], tuple[ToolCall, RunRecord]]) -> None:
    """The turn stopped: calls still running are cancelled (and stored as such)."""
    pending = [t for t in tasks if not t.done()]
    for task in pending:
        task.cancel()
    if pending:
        await asyncio.gather(*pending, return_exceptions=True)


async def _decide(tt: ToolTurn, call: ToolCall, record: RunRecord, tool: Tool | None,
                  problem: str | None, *, over_limit: bool,
                  seen: Counter[str]) -> ApprovalRequest | None:
    """Settle what can be settled without the user (unknown tool, bad arguments, limits,
    the policy); the question to ask, or None."""
    settings = tt.toolbox.settings
    refusal: str | None = None
    if tool is None:
        record.status, record.decision = "error", "unknown"
        record.error = (f"there is no tool named '{call.name}'; the tools are: "
                        f"{', '.join(sorted(tt.tools)) or 'none'}")
    elif problem is not None:
        record.status, record.decision, record.error = "error", "invalid", problem
    elif over_limit:
        refusal = (f"Not run: the limit of {settings.max_calls} tool calls per answer was "
                   "reached. Answer with what you have.")
        record.decision = "limit"
    else:
        key = f"{tool.canonical}:{canonical_arguments(call.arguments)}"
        seen[key] += 1
        if seen[key] > settings.max_repeats:
            refusal = (f"Not run: this exact call already ran {settings.max_repeats} times in "
                       "this answer. Use its earlier result or answer.")
            record.decision = "repeat"
    question: ApprovalRequest | None = None
    if tool is not None and problem is None and refusal is None and record.decision == "none":
        record.decision, refusal, question = await _judge(tt, tool, call)
    if refusal is not None:
        record.status, record.error = "denied", refusal
    return question


async def _execute(tt: ToolTurn, tool: Tool, args: dict[str, Any], record: RunRecord) -> None:
    """Run one approved call within its timeout and fill ``record`` with what came back."""
    settings = tt.toolbox.settings
    record.started_at = utcnow()
    started = time.monotonic()
    try:
        output = await tt.toolbox.run(tool, args, book=tt.book, collections=tt.collections)
    except asyncio.CancelledError:
        record.duration_ms = (time.monotonic() - started) * 1000
        record.error = "The call was cancelled by the user."
        raise
    record.duration_ms = (time.monotonic() - started) * 1000
    record.status = output.status
    if output.status == "ok":
        record.result = output.text
    else:
        record.error = output.text
    record.result_chars = len(output.text)
    record.truncated = clip(output.text, settings.max_result_chars)[1]


def _started(call: ToolCall, record: RunRecord) -> ToolCallStarted:
    return ToolCallStarted(call.id, record.server, record.tool, call.arguments, record.round,
                           record.decision)


def _finished(call: ToolCall, record: RunRecord) -> ToolCallFinished:
    shown = record.result if record.status == "ok" else (record.error or "")
    return ToolCallFinished(call.id, record.server, record.tool, call.arguments,
                            record.status, record.decision, shown or "",
                            record.result_chars or len(shown or ""), record.truncated,
                            record.duration_ms, record.round)


async def _judge(tt: ToolTurn, tool: Tool, call: ToolCall
                 ) -> tuple[str, str | None, ApprovalRequest | None]:
    """(decision, refusal sentence or None when it may run, the question to ask or None).
    The decision is ``ask`` while the user has not answered."""
    session_ok = tt.toolbox.session_approved(tt.session_id)
    if tt.always is None:
        tt.always = await tt.toolbox.always()
    always = tt.always
    approved = tool.canonical in session_ok or tool.canonical in always
    servers = tt.history_servers | {r.server for r in tt.outcome.runs if r.status == "ok"}
    taint = taint_reason(len(tt.book.sources), servers, tool.server)
    verdict = tt.policy.verdict(tool.canonical, approved=approved, tainted_by=taint)
    if verdict == "deny":
        return ("deny_list", f"Not run: {tool.canonical} is denied by the user's "
                "configuration.", None)
    if verdict == "allow":
        if not _allowed(tt, tool):
            return ("always" if tool.canonical in always else "session"), None, None
        return "allow_list", None, None
    if verdict == "auto":
        return "auto", None, None
    if verdict == "never":
        return "never", (f"Not run: {tool.canonical} is not in the user's allowed tools and "
                         "tools are not approved one by one here. Answer without it."), None
    if tt.approver is None:
        return "no_terminal", (f"Not run: {tool.canonical} needs the user's approval and "
                               "there is no terminal to ask on. Answer without it."), None
    reason = (f"Asked because {taint}." if taint and tt.policy.approval == "auto"
              else "Asked because approval is 'ask' and the tool is not in tools.allow.")
    if taint and tt.policy.approval != "auto":
        reason += f" Note: {taint}."
    return "ask", None, ApprovalRequest(tool.server, tool.name, tool.description,
                                        pretty(call.arguments), reason, tt.session_id)


async def _ask(tt: ToolTurn, tool: Tool, question: ApprovalRequest) -> tuple[str, str | None]:
    """The user's answer as (decision, refusal or None)."""
    assert tt.approver is not None
    answer = await tt.approver(question)
    if answer not in ANSWERS or answer == "deny":
        return "denied", f"Not run: the user refused the call to {tool.canonical}."
    if answer == "session":
        tt.toolbox.session_approved(tt.session_id).add(tool.canonical)
    elif answer == "always":
        await tt.toolbox.remember_always(tool.canonical)
        if tt.always is not None:
            tt.always.add(tool.canonical)
    return answer, None


def _allowed(tt: ToolTurn, tool: Tool) -> bool:
    return tt.policy.static(tool.canonical) == "allow"


def _round_usage(usage: StreamUsage | None, prompt: Sequence[ChatMessage], text: str,
                 calls: Sequence[ToolCall], started: float, first: float | None, *,
                 reached: bool) -> RoundUsage:
    latency = (time.monotonic() - started) * 1000
    first_ms = (first - started) * 1000 if first is not None else None
    if usage is not None:
        return RoundUsage(usage.prompt_tokens, usage.completion_tokens, False, latency, first_ms)
    completion = estimate_tokens(text) + sum(estimate_tokens(c.name + c.arguments)
                                             for c in calls)
    return RoundUsage(_prompt_tokens(prompt) if reached else 0, completion, True, latency,
                      first_ms)


async def _check_budget(engine: Engine, outcome: ToolOutcome, prompt: Sequence[ChatMessage],
                        provider_name: str | None, model: str, max_tokens: int | None) -> Any:
    usage = engine.usage
    spent = sum(usage.cost(provider_name, model, prompt_tokens=r.prompt_tokens,
                           completion_tokens=r.completion_tokens) for r in outcome.rounds)
    estimate = usage.cost(provider_name, model, prompt_tokens=_prompt_tokens(prompt),
                          completion_tokens=max_tokens or 0)
    return await usage.check_budget(spent + estimate)
