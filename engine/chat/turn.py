"""Running one turn once its question is stored: sources, prompt, budget, stream, final write.

The stream runs with no database transaction open. The final write is one transaction:
the answer (``complete``, ``interrupted`` or ``error``), the citations it actually used and
its usage record. It runs whatever stopped the stream, and it is shielded: a cancelled task
(Ctrl-C) or a consumer that closes the iterator still gets what arrived stored before the
cancellation goes on.

With tools on (``tools.enabled`` or the turn's ``tools``), the stream is the rounds of
``engine.tools.loop``: tool events pass through, the runs and one usage row per round are
stored in the same final transaction, and sources found by ``parley.search`` are cited like
retrieved ones.

Usage: the server's counts when it reported them; otherwise an estimate marked as
estimated (the prompt estimate of ``engine.prompt``, the answer at the same rate). A call
refused before the server answered (no text, not a cut-off stream) records no tokens.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, TypeVar

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.chat.citations import first_positions, resolve
from engine.db import models as m
from engine.drift.check import hashes_at_answer
from engine.errors import ProviderError, StreamInterrupted
from engine.chat.prompt import Prompt, build_prompt, estimate_tokens
from engine.providers.base import ChatMessage, StreamUsage, TextDelta
from engine.tools.selection import tools_on
from engine.types import (
    BudgetWarning,
    Citation,
    Delta,
    Done,
    Message,
    NothingFound,
    SearchHit,
    Searched,
    Sources,
    ToolCallFinished,
    ToolCallStarted,
    ToolNotice,
    Usage,
)

if TYPE_CHECKING:
    from engine.chat.service import Chat
    from engine.facade import Engine
    from engine.session_setup.settings import TurnOptions
    from engine.tools.loop import ToolTurn

ChatEvent = (Delta | Sources | Done | BudgetWarning | Searched | NothingFound
             | ToolCallStarted | ToolCallFinished | ToolNotice)
T = TypeVar("T")
EXTRACTIVE = "extractive"


@dataclass(frozen=True, slots=True)
class Turn:
    """Everything a turn needs once its question is stored."""

    session_id: int
    question_id: int
    question: str
    history: tuple[Message, ...]
    collections: tuple[str, ...]
    provider_name: str | None  # None: the built-in extractive answerer
    model: str
    system_prompt: str
    rag: bool
    options: TurnOptions | None = None  # from the session (None: the configuration's)
    tools: bool | None = None  # None: tools.enabled
    approval: str | None = None  # None: tools.approval
    approver: Any = None  # asks the user about a tool call; None: nobody to ask


@dataclass
class _Call:
    """What one streamed model call produced so far."""

    started: float = field(default_factory=time.monotonic)
    parts: list[str] = field(default_factory=list)
    first: float | None = None
    usage: StreamUsage | None = None

    def add(self, text: str) -> None:
        if self.first is None:
            self.first = time.monotonic()
        self.parts.append(text)

    @property
    def text(self) -> str:
        return "".join(self.parts)


@dataclass(frozen=True, slots=True)
class _Saved:
    message_id: int
    citations: tuple[Citation, ...]
    unknown: tuple[int, ...]
    usage: Usage


async def shielded(awaitable: Awaitable[T]) -> T:
    """Wait for ``awaitable`` even through cancellation, then let the cancellation go on."""
    task = asyncio.ensure_future(awaitable)
    cancelled = False
    while True:
        try:
            result = await asyncio.shield(task)
            break
        except asyncio.CancelledError:
            if task.done():
                result = task.result()
                break
            cancelled = True  # keep waiting: the answer must be stored before we stop
    if cancelled:
        raise asyncio.CancelledError
    return result


async def retrieve(engine: Engine, turn: Turn) -> list[SearchHit]:
    """The turn's sources: hybrid search over its collections (none without RAG)."""
    if not turn.rag or not turn.collections:
        return []
    opts = turn.options
    # explain: a hit with a vector rank tells that the question was embedded
    return list(await engine.retrieval.search(
        turn.question, k=opts.top_k if opts else engine.settings.retrieval.top_k,
        collections=list(turn.collections), explain=True,
        keyword_only=opts.scope.keyword_only if opts and opts.scope else ()))


def query_embedding(engine: Engine, question: str) -> tuple[int, bool]:
    """(tokens, estimated) of embedding the question for vector search."""
    from engine.providers.embedders import count_tokens

    if engine.settings.embedding.provider == "local":
        limit = engine.embedder().max_tokens
        return min(count_tokens(question) + 2, limit), False  # + [CLS] and [SEP]
    return estimate_tokens(question), True


async def run_turn(chat: Chat, turn: Turn) -> AsyncIterator[ChatEvent]:
    """Answer a stored question (see the module docstring)."""
    engine, settings = chat.engine, chat.engine.settings
    hits = await retrieve(engine, turn)
    embedded = (query_embedding(engine, turn.question)
                if any(hit.vector_rank is not None for hit in hits) else (0, False))
    opts = turn.options
    window = opts.context_window if opts else engine.usage.prices(turn.provider_name,
                                                                  turn.model).context_window
    max_tokens = opts.max_tokens if opts else settings.chat.max_tokens
    temperature = opts.temperature if opts else settings.chat.temperature
    pinned = opts.attachments if opts else ()
    provider = chat.provider(turn.provider_name)
    tools: ToolTurn | None = None
    rounds: dict[int, list[ChatMessage]] = {}
    selection = opts.tools if opts else None
    if provider.kind != EXTRACTIVE and tools_on(settings.tools.enabled, selection, turn.tools):
        tools, rounds = await engine.tools.prepare(
            session_id=turn.session_id, collections=turn.collections, approval=turn.approval,
            approver=turn.approver, history=turn.history, selection=selection)
        for problem in tools.problems:
            yield ToolNotice(problem)
        if not tools.tools:
            tools, rounds = None, {}
    elif "tools" in engine._services:  # this turn offers none: "tools: N" must not linger
        engine.tools.last_offered = None
    if provider.kind == EXTRACTIVE and turn.tools:
        yield ToolNotice("tools need a model server (chat.provider): the offline extractive "
                         "answerer calls none")
    prompt = build_prompt(system_prompt=turn.system_prompt, question=turn.question,
                          history=turn.history, hits=hits, context_window=window,
                          max_tokens=max_tokens, pinned=pinned, tool_rounds=rounds)
    if tools is not None:
        tools.book.sources[:] = prompt.sources
    estimate = engine.usage.cost(turn.provider_name, turn.model, prompt_tokens=prompt.tokens,
                                 completion_tokens=max_tokens or 0)
    warning = await engine.usage.check_budget(estimate)
    if warning is not None:
        yield warning
    searched = opts.scope if opts else None
    if turn.rag and not hits and searched is not None:
        yield NothingFound(searched)
    call = _Call()
    failure: ProviderError | None = None
    messages = prompt.messages
    extra = {}
    if provider.kind == EXTRACTIVE:  # it matches the question's words, not the sources'
        messages = (*messages[:-1], ChatMessage("user", turn.question))
        if searched is not None and turn.rag:
            from engine.session_setup.scope import searched_where

            extra["searched"] = searched_where(searched)
    if tools is not None:
        from engine.tools.loop import run_rounds

        stream: AsyncIterator[Any] = run_rounds(
            engine, tools, provider, messages, provider_name=turn.provider_name,
            model=turn.model, temperature=temperature, max_tokens=max_tokens)
    else:
        stream = provider.stream(messages, model=turn.model, temperature=temperature,
                                 max_tokens=max_tokens, sources=prompt.source_texts(), **extra)
    try:
        async with contextlib.aclosing(stream) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    call.add(event.text)
                    yield Delta(event.text)
                elif isinstance(event, StreamUsage):
                    call.usage = event
                else:  # tool events and a budget warning before a later round
                    yield event
    except ProviderError as exc:
        failure = exc
    except (asyncio.CancelledError, GeneratorExit):
        await shielded(_save(chat, turn, prompt, call, embedded, "interrupted",
                             "stopped before the answer was complete", tools=tools))
        raise
    except Exception as exc:
        await shielded(_save(chat, turn, prompt, call, embedded, "error",
                             getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}",
                             tools=tools))
        raise
    status = ("complete" if failure is None else
              "interrupted" if isinstance(failure, StreamInterrupted) else "error")
    saved = await shielded(_save(chat, turn, prompt, call, embedded, status,
                                 failure.message if failure else None, failure, tools=tools))
    yield Sources(saved.citations, saved.unknown)
    yield Done(session_id=turn.session_id, message_id=saved.message_id, status=status,
               usage=saved.usage, model=turn.model,
               error=failure.message if failure else None)
    if failure is not None:
        raise failure


async def _save(chat: Chat, turn: Turn, prompt: Prompt, call: _Call, embedded: tuple[int, bool],
                status: str, error: str | None,
                failure: ProviderError | None = None, *, tools: ToolTurn | None = None) -> _Saved:
    """Store the answer, its citations and its usage (the model call, and the question's
    embedding when vectors were searched) in one transaction; with tools, the tool runs
    and one usage row per round."""
    engine = chat.engine
    text = call.text
    citations, unknown = resolve(text, tools.book.sources if tools else prompt.sources)
    positions = first_positions(text)
    if call.usage is not None:
        prompt_tokens, completion, estimated = (call.usage.prompt_tokens,
                                                call.usage.completion_tokens, False)
    else:
        reached = failure is None or bool(text) or isinstance(failure, StreamInterrupted)
        prompt_tokens, completion, estimated = (prompt.tokens if reached else 0,
                                                estimate_tokens(text), True)
    ended = time.monotonic()
    provider = turn.provider_name or EXTRACTIVE
    async with engine._require_db().write() as s:
        session = await chat.branches.owned(s, turn.session_id)
        row = await chat.branches.add_in(s, session, "assistant", text,
                                         parent_id=turn.question_id, status=status,
                                         model=turn.model, provider=provider, error=error)
        citations = await _live(s, citations)
        chunk_hash, doc_hash = await hashes_at_answer(s, [c.chunk_id for c in citations],
                                                      [c.document_id for c in citations])
        s.add_all(m.Citation(
            user_id=engine.user_id, message_id=row.id, chunk_id=c.chunk_id,
            document_id=c.document_id, marker=c.marker, position=positions.get(c.marker),
            path=c.path, page=c.page, line_start=c.line_start, line_end=c.line_end,
            score=c.score, snippet=c.snippet, chunk_hash=chunk_hash.get(c.chunk_id or 0),
            document_hash=doc_hash.get(c.document_id or 0)) for c in citations)
        if tools is not None and tools.outcome.rounds:
            from engine.tools.store import save_outcome

            usage = await save_outcome(s, engine, tools.outcome, provider=provider,
                                       model=turn.model, session_id=turn.session_id,
                                       message_id=row.id)
        else:
            usage = await engine.usage.record_in(
                s, "chat", provider=provider, model=turn.model, prompt_tokens=prompt_tokens,
                completion_tokens=completion, estimated=estimated,
                cost=engine.usage.cost(turn.provider_name, turn.model,
                                       prompt_tokens=prompt_tokens, completion_tokens=completion),
                latency_ms=(ended - call.started) * 1000,
                first_token_ms=(call.first - call.started) * 1000 if call.first else None,
                session_id=turn.session_id, message_id=row.id)
        if embedded[0]:
            emb = engine.settings.embedding
            spent = await engine.usage.record_in(
                s, "embedding", provider=emb.provider, model=emb.model,
                embedding_tokens=embedded[0], estimated=embedded[1],
                cost=0.0 if emb.provider == "local" else None,
                session_id=turn.session_id, message_id=row.id)
            usage = Usage(usage.prompt_tokens, usage.completion_tokens, spent.embedding_tokens,
                          usage.cost + spent.cost, usage.estimated or spent.estimated)
    return _Saved(row.id, tuple(citations), tuple(unknown), usage)


async def _live(s: AsyncSession, citations: list[Citation]) -> list[Citation]:
    """The citations with links to chunks or documents deleted meanwhile cleared (a
    re-index during the stream must not lose the answer); path, span and snippet stay."""
    chunk_ids = [c.chunk_id for c in citations if c.chunk_id is not None]
    doc_ids = [c.document_id for c in citations if c.document_id is not None]
    if not chunk_ids and not doc_ids:
        return citations
    live_chunks = set(await s.scalars(select(m.Chunk.id).where(
        m.Chunk.id.in_(chunk_ids)))) if chunk_ids else set()
    live_docs = set(await s.scalars(select(m.Document.id).where(
        m.Document.id.in_(doc_ids)))) if doc_ids else set()
    return [replace(c, chunk_id=c.chunk_id if c.chunk_id in live_chunks else None,
                    document_id=c.document_id if c.document_id in live_docs else None)
            for c in citations]
