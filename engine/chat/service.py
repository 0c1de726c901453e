"""Asking questions: one turn from the question to the stored, cited answer.

A turn stores the question and commits before anything else can fail, so a question is
never lost. It then retrieves sources from the session's collections, builds the prompt
within the model's context budget, checks the spending budget, and streams the answer with
no database transaction open. At the end one transaction stores the answer (``complete``,
``interrupted`` or ``error``), the citations it actually used and its usage record.

Whatever stops the stream keeps what arrived: a provider error (the answer is stored with
its status, ``Sources`` and ``Done`` are sent, then the error is raised so front ends can
show its hint), a consumer that stops iterating, or a cancelled task (Ctrl-C): the final
write is shielded and finishes before the cancellation goes on.

Which session: ``session_id``, else a new one with ``new=True``, else the most recent one.
Which model: the call's ``provider``/``model``, else the session's, else ``chat.*`` in the
config; no provider at all means the offline extractive answerer. Arguments of ``ask`` apply
to that turn; a session created by the turn keeps them.

Which collections: the call's, else the session's; a session that names none searches
every collection its user can see (``engine.session_setup.scope``). Temperature, max tokens,
top-k and RAG: the call's, else the session's, else the configuration; the context window
is the server's own figure where it tells (``engine.session_setup.windows``).

Tools: ``tools`` True/False overrides ``tools.enabled`` for the turn, ``approval`` overrides
``tools.approval``, and ``approver`` is the front end's question to the user before a call
that needs one (an async callable given an ``ApprovalRequest``, answering ``once``,
``session``, ``always`` or ``deny``); without one such calls are refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from engine.history.branches import Branches, last_exchange
from engine.db import models as m
from engine.errors import ConfigError, ProviderError, UsageError
from engine.chat.prompt import DEFAULT_SYSTEM_PROMPT, answer_reserve, fixed_tokens
from engine.providers.base import ChatProvider
from engine.providers.registry import make_chat_provider
from engine.chat.turn import EXTRACTIVE, ChatEvent, Turn, run_turn
from engine.session_setup.attachments import (
    LoadedAttachment,
    attachment_hits,
    too_large,
)
from engine.session_setup.attachments import store_in as store_attachments
from engine.session_setup.attachments import stored as stored_attachments
from engine.session_setup.scope import resolve_scope
from engine.session_setup.settings import (
    TurnOptions,
    list_models,
    merged_params,
    parse_params,
    turn_params,
)
from engine.teams import shares
from engine.types import ChatScope, ContextWindow, Searched, SessionDetail, SessionSummary

if TYPE_CHECKING:
    from engine.facade import Engine
    from engine.tools.loop import Approver

TITLE_CHARS = 60


@dataclass(frozen=True, slots=True)
class _Setup:
    provider: str | None
    model: str
    system: str
    scope: ChatScope
    options: TurnOptions


def title_from(question: str) -> str:
    """A session title: the question's first line, cut at a word near 60 characters."""
    line = " ".join(question.strip().splitlines()[0].split()) if question.strip() else ""
    if len(line) <= TITLE_CHARS:
        return line or "New chat"
    return line[:TITLE_CHARS].rsplit(" ", 1)[0].rstrip(",.;:") + "…"


class Chat:
    """Turns, regenerate, edit, and the per-session model, system prompt and collections."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.branches = Branches(engine._require_db(), engine.user_id)
        self._providers: dict[str, ChatProvider] = {}

    async def aclose(self) -> None:
        """Close the providers' connection pools."""
        providers, self._providers = list(self._providers.values()), {}
        for provider in providers:
            await provider.aclose()

    def provider(self, name: str | None) -> ChatProvider:
        """The chat provider ``name`` (None or ``extractive``: the offline answerer)."""
        key = name or EXTRACTIVE
        if key not in self._providers:
            builtin = name is None or (name == EXTRACTIVE
                                       and EXTRACTIVE not in self.engine.settings.providers)
            self._providers[key] = make_chat_provider(self.engine.settings,
                                                      None if builtin else name)
        return self._providers[key]

    # -- turns ----------------------------------------------------------------------------------
    async def ask(self, question: str, *, session_id: int | None = None, new: bool = False,
                  collections: Sequence[str] | None = None, rag: bool | None = None,
                  model: str | None = None, provider: str | None = None,
                  system_prompt: str | None = None,
                  attachments: Sequence[LoadedAttachment] = (), persona: str | None = None,
                  params: Mapping[str, Any] | None = None, tools: bool | None = None,
                  approval: str | None = None,
                  approver: Approver | None = None) -> AsyncIterator[ChatEvent]:
        """Ask ``question`` and stream the answer: ``Searched``, ``BudgetWarning``?,
        ``NothingFound``?, ``ToolNotice``/``ToolCallStarted``/``ToolCallFinished``*,
        ``Delta``*, ``Sources``, ``Done``. A failed call still sends ``Sources`` and ``Done``
        (status ``error`` or ``interrupted``), then raises the ``ProviderError``.

        ``persona`` starts a new session with the persona's settings (the other arguments
        override them); its first message is the question when none is given.
        ``attachments`` go into the prompt as the first numbered sources and are stored
        with the question; if they do not fit the model's context, nothing is stored."""
        question = question.strip()
        if persona is not None:
            if session_id is not None:
                raise UsageError("a persona starts a new session: it cannot continue one",
                                 "drop --session, or change the session: parley sessions set")
            preset = await self.engine.personas.get(persona)
            await self.engine.personas.check(preset)
            new = True
            question = question or (preset.first_message or "").strip()
            provider, model = provider or preset.provider, model or preset.model
            system_prompt = system_prompt or preset.system_prompt
            collections = collections or preset.collections
            rag = preset.rag if rag is None else rag
            params = merged_params(preset.params, params)
        if not question:
            raise UsageError("the question is empty", "type a question, or pipe one on stdin")
        if new and session_id is not None:
            raise UsageError("choose either a new session or an existing one, not both")
        detail = None if new else await self._find_session(session_id)
        summary = detail.session if detail else None
        given = parse_params(params) if params else {}
        setup = await self._setup(summary, provider, model, collections, rag, given,
                                  system_prompt, question, attachments)
        async with self.engine._require_db().write() as s:
            if summary is None:
                session = await self._create_in(s, question, provider,
                                                model, system_prompt, collections or ())
                session.rag, session.params = rag, merged_params(given) or None
            else:
                session = await self.branches.owned(s, summary.id)
                if summary.message_count == 0 and summary.title == "New chat":
                    session.title = title_from(question)
            row = await self.branches.add_in(s, session, "user", question,
                                             parent_id=session.current_message_id)
            store_attachments(s, self.engine.user_id, row.id, attachments)
        yield Searched(setup.scope, summary is None
                       or summary.message_count == 0)
        turn = Turn(session.id, row.id, question, detail.messages if detail else (),
                    setup.scope.collections, setup.provider, setup.model, setup.system,
                    setup.scope.rag, options=setup.options, tools=tools, approval=approval,
                    approver=approver)
        async with contextlib.aclosing(run_turn(self, turn)) as events:
            async for event in events:
                yield event

    async def regenerate(self, session_id: int | None, *, model: str | None = None,
                         provider: str | None = None,
                         rag: bool | None = None, tools: bool | None = None,
                         approval: str | None = None,
                         approver: Approver | None = None) -> AsyncIterator[ChatEvent]:
        """Answer the last question again as a new branch (the old answer is kept).
        ``session_id`` None: the latest session."""
        detail = await self._existing_session(session_id)
        session_id = detail.session.id
        summary, last = detail.session, last_exchange(detail)
        async with self.engine._require_db().read() as s:
            attached = await stored_attachments(s, last.question.id)
        setup = await self._setup(summary, provider, model, None, rag, {}, None,
                                  last.question.content, attached)
        turn = Turn(session_id, last.question.id, last.question.content, last.history,
                    setup.scope.collections, setup.provider, setup.model, setup.system,
                    setup.scope.rag, options=setup.options, tools=tools, approval=approval,
                    approver=approver)
        async with contextlib.aclosing(run_turn(self, turn)) as events:
            async for event in events:
                yield event

    async def edit_last(self, session_id: int | None, question: str, *,
                        model: str | None = None, provider: str | None = None,
                        rag: bool | None = None, tools: bool | None = None,
                        approval: str | None = None,
                        approver: Approver | None = None) -> AsyncIterator[ChatEvent]:
        """Replace the last question with ``question`` as a new branch and answer it (its
        attachments stay). ``session_id`` None: the latest session."""
        question = question.strip()
        if not question:
            raise UsageError("the question is empty", "type the new question")
        detail = await self._existing_session(session_id)
        session_id = detail.session.id
        summary, last = detail.session, last_exchange(detail)
        async with self.engine._require_db().read() as s:
            attached = await stored_attachments(s, last.question.id)
        setup = await self._setup(summary, provider, model, None, rag, {}, None, question,
                                  attached)
        async with self.engine._require_db().write() as s:
            session = await self.branches.owned(s, session_id)
            row = await self.branches.add_in(s, session, "user", question,
                                             parent_id=last.question.parent_id)
            store_attachments(s, self.engine.user_id, row.id, attached)
        turn = Turn(session_id, row.id, question, last.history, setup.scope.collections,
                    setup.provider, setup.model, setup.system, setup.scope.rag,
                    options=setup.options, tools=tools, approval=approval, approver=approver)
        async with contextlib.aclosing(run_turn(self, turn)) as events:
            async for event in events:
                yield event

    async def _setup(self, summary: SessionSummary | None, provider: str | None,
                     model: str | None, collections: Sequence[str] | None, rag: bool | None,
                     params: Mapping[str, Any], system_prompt: str | None, question: str,
                     attachments: Sequence[LoadedAttachment]) -> _Setup:
        """Everything a turn takes from the call, the session and the configuration; refuses
        attachments that cannot fit before anything is stored."""
        name, chosen = await self._choose_model(summary, provider, model)
        use_rag = self._rag(rag if rag is not None else (summary.rag if summary else None))
        scope = await resolve_scope(self.engine, await self._collections(summary, collections),
                                    rag=use_rag)
        temperature, max_tokens, top_k = turn_params(
            self.engine, merged_params(summary.params if summary else None, params))
        window = await self.context_window(name, chosen)
        system = self._system_prompt(summary, system_prompt)
        pinned = tuple(attachment_hits(attachments))
        if pinned:
            reserve = answer_reserve(window.tokens, max_tokens)
            needed = fixed_tokens(system, question, pinned)
            if needed > window.tokens - reserve:
                raise too_large(attachments, needed, window.tokens, reserve)
        options = TurnOptions(temperature, max_tokens, top_k, window.tokens, scope, pinned,
                              tools=summary.tools if summary else None)
        return _Setup(name, chosen, system, scope, options)

    async def context_window(self, provider: str | None, model: str, *,
                             refresh: bool = False) -> ContextWindow:
        """The context window of ``model`` on ``provider``: the server's figure (cached),
        else the configured one, else the default."""
        from engine.session_setup.windows import context_window

        if provider is not None and self.provider(provider).kind == EXTRACTIVE:
            provider = None
        return await context_window(self.engine, provider, model, refresh=refresh)

    async def scope(self, session_id: int | None = None, *,
                    collections: Sequence[str] | None = None,
                    rag: bool | None = None) -> ChatScope:
        """Which documents a question in ``session_id`` (None: a new session) searches."""
        summary = (await self.engine.sessions.get(session_id)).session if session_id else None
        use_rag = self._rag(rag if rag is not None else (summary.rag if summary else None))
        return await resolve_scope(self.engine, await self._collections(summary, collections),
                                   rag=use_rag)

    async def start(self, *, persona: str | None = None) -> SessionSummary:
        """A new, empty session (its title comes from its first question), set up from
        ``persona`` when given."""
        preset = None
        if persona is not None:
            preset = await self.engine.personas.get(persona)
            await self.engine.personas.check(preset)
        async with self.engine._require_db().write() as s:
            session = await self._create_in(
                s, "", preset.provider if preset else None, preset.model if preset else None,
                preset.system_prompt if preset else None, preset.collections if preset else ())
            session.title = "New chat"
            if preset is not None:
                session.rag, session.params = preset.rag, dict(preset.params) or None
        return (await self.engine.sessions.get(session.id)).session

    async def configure(self, session_id: int, **changes: Any) -> tuple[SessionSummary,
                                                                         list[str]]:
        """Change a session's settings (see ``engine.session_setup.settings.configure``)."""
        from engine.session_setup.settings import configure

        return await configure(self.engine, session_id, **changes)

    async def models(self, provider: str | None, *, refresh: bool = False) -> list[str]:
        """The provider's models, configured ones first (the server's list is cached)."""
        return await list_models(self.engine, provider, refresh=refresh)

    # -- per-session settings ----------------------------------------------------------------
    async def set_model(self, session_id: int, model: str | None,
                        provider: str | None = None) -> SessionSummary:
        """Use ``model`` (on ``provider``; None keeps the configured provider) in a session.
        ``model`` None returns the session to the configured default."""
        if provider is not None and provider != EXTRACTIVE \
                and provider not in self.engine.settings.providers:
            raise ConfigError(f"provider '{provider}' is not defined under 'providers'",
                              f"defined: {', '.join(sorted(self.engine.settings.providers))}")
        async with self.engine._require_db().write() as s:
            session = await self.branches.owned(s, session_id)
            session.model, session.provider = model, provider
        return (await self.engine.sessions.get(session_id)).session

    async def set_system_prompt(self, session_id: int, prompt: str | None) -> SessionSummary:
        """The session's system prompt (None: the configured or built-in one)."""
        async with self.engine._require_db().write() as s:
            session = await self.branches.owned(s, session_id)
            session.system_prompt = prompt.strip() if prompt and prompt.strip() else None
        return (await self.engine.sessions.get(session_id)).session

    async def set_collections(self, session_id: int, names: Sequence[str]) -> SessionSummary:
        """The collections the session searches (empty: the default collection)."""
        async with self.engine._require_db().write() as s:
            session = await self.branches.owned(s, session_id)
            rows = await self._collection_rows(s, names)
            await s.execute(delete(m.SessionCollection)
                            .where(m.SessionCollection.session_id == session.id))
            s.add_all(m.SessionCollection(session_id=session.id, collection_id=row.id)
                      for row in rows)
        return (await self.engine.sessions.get(session_id)).session

    # -- choices --------------------------------------------------------------------------------
    async def _find_session(self, session_id: int | None) -> SessionDetail | None:
        """The session and its active branch: ``session_id``'s, else the latest one."""
        if session_id is None:
            latest = await self.engine.sessions.list(limit=1)
            if not latest:
                return None
            session_id = latest[0].id
        return await self.engine.sessions.get(session_id)

    async def _existing_session(self, session_id: int | None) -> SessionDetail:
        """Like ``_find_session``, for verbs that need a session to exist."""
        detail = await self._find_session(session_id)
        if detail is None:
            raise UsageError("there is no session yet", "ask a question first: parley ask --new")
        return detail

    def _system_prompt(self, summary: SessionSummary | None, given: str | None) -> str:
        return (given or (summary.system_prompt if summary else None)
                or self.engine.settings.chat.system_prompt or DEFAULT_SYSTEM_PROMPT)

    def _rag(self, given: bool | None) -> bool:
        return self.engine.settings.chat.rag if given is None else given

    async def _choose_model(self, summary: SessionSummary | None, provider: str | None,
                            model: str | None) -> tuple[str | None, str]:
        """(provider name or None for the extractive answerer, model id)."""
        chat = self.engine.settings.chat
        name = provider or (summary.provider if summary else None) or chat.provider
        if self.provider(name).kind == EXTRACTIVE:
            if model and name is None:
                raise ConfigError(f"--model {model} needs a model server, and no chat provider "
                                  "is configured", "set chat.provider, or pass --provider NAME")
            return (name if name in self.engine.settings.providers else None), EXTRACTIVE
        if model:
            return name, model
        if summary and summary.model and (summary.provider or chat.provider) == name:
            return name, summary.model
        if chat.model and chat.provider == name:
            return name, chat.model
        configured = self.engine.settings.providers[name].models if name else {}
        if configured:
            return name, next(iter(configured))
        try:
            offered = ", ".join(await self.provider(name).list_models()) or "none"
        except ProviderError as exc:
            offered = f"unknown ({exc.message})"
        raise ConfigError(f"no model chosen for provider '{name}'",
                          f"set chat.model or pass --model; the server offers: {offered}")

    async def _collections(self, summary: SessionSummary | None,
                           given: Sequence[str] | None) -> tuple[str, ...]:
        """The collections a turn is scoped to (labels: ``owner/name`` for a shared one);
        empty: all of the user's."""
        if given:
            async with self.engine._require_db().read() as s:
                return tuple(v.label for v in await shares.resolve(
                    s, self.engine.user_id, given, quote=False))
        if summary and summary.collections:
            return tuple(summary.collections)
        return ()

    async def _collection_rows(self, s: AsyncSession,
                               names: Sequence[str]) -> list[m.Collection]:
        # the user's own, or shared with them (``owner/name``), in the order given
        return [v.row for v in await shares.resolve(s, self.engine.user_id, names,
                                                    quote=False)]

    async def _create_in(self, s: AsyncSession, question: str, provider: str | None,
                         model: str | None, system_prompt: str | None,
                         collections: Sequence[str]) -> m.Session:
        session = m.Session(user_id=self.engine.user_id, title=title_from(question),
                            model=model, provider=provider,
                            system_prompt=system_prompt.strip() if system_prompt else None)
        s.add(session)
        await s.flush()
        for row in await self._collection_rows(s, collections):
            s.add(m.SessionCollection(session_id=session.id, collection_id=row.id))
        return session

