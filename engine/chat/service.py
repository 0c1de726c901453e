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
is the server's own figure where it tells (``engine.session_setup.windows``). These choices
are made in ``engine.session_setup.choices``.

Tools: ``tools`` True/False overrides ``tools.enabled`` for the turn, ``approval`` overrides
``tools.approval``, and ``approver`` is the front end's question to the user before a call
that needs one (an async callable given an ``ApprovalRequest``, answering ``once``,
``session``, ``always`` or ``deny``); without one such calls are refused.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy.ext.asyncio import AsyncSession

from engine.chat.turn import EXTRACTIVE, ChatEvent, run_turn
from engine.db import models as m
from engine.errors import ConfigError, UsageError
from engine.history.branches import Branches, LastExchange, last_exchange
from engine.providers.base import ChatProvider
from engine.providers.registry import make_chat_provider
from engine.session_setup.attachments import LoadedAttachment
from engine.session_setup.attachments import store_in as store_attachments
from engine.session_setup.attachments import stored as stored_attachments
from engine.session_setup.choices import choose_model, turn_scope, turn_setup
from engine.session_setup.settings import (
    collection_rows,
    list_models,
    merged_params,
    parse_params,
    replace_collections,
)
from engine.types import ChatScope, ContextWindow, Searched, SessionDetail, SessionSummary

if TYPE_CHECKING:
    from engine.facade import Engine
    from engine.tools.loop import Approver

TITLE_CHARS = 60


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
        preset_tools: tuple[str, ...] | None = None  # a persona's tools, for its new session
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
            preset_tools = preset.tools
        if not question:
            raise UsageError("the question is empty", "type a question, or pipe one on stdin")
        if new and session_id is not None:
            raise UsageError("choose either a new session or an existing one, not both")
        detail = None if new else await self._find_session(session_id)
        summary = detail.session if detail else None
        given = parse_params(params) if params else {}
        setup = await turn_setup(self, summary, provider, model, collections, rag, given,
                                 system_prompt, question, attachments, tools=preset_tools)
        async with self.engine._require_db().write() as s:
            if summary is None:
                session = await self._create_in(s, question, provider,
                                                model, system_prompt, collections or ())
                session.rag, session.params = rag, merged_params(given) or None
                if preset_tools is not None:
                    session.tools, session.tools_persona = list(preset_tools), persona
            else:
                session = await self.branches.owned(s, summary.id)
                if summary.message_count == 0 and summary.title == "New chat":
                    session.title = title_from(question)
            row = await self.branches.add_in(s, session, "user", question,
                                             parent_id=session.current_message_id)
            store_attachments(s, self.engine.user_id, row.id, attachments)
        yield Searched(setup.scope, summary is None
                       or summary.message_count == 0)
        turn = setup.turn(session.id, row.id, question, detail.messages if detail else (),
                          tools=tools, approval=approval, approver=approver)
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
        summary, last, attached = await self._last_exchange(session_id)
        setup = await turn_setup(self, summary, provider, model, None, rag, {}, None,
                                 last.question.content, attached)
        turn = setup.turn(summary.id, last.question.id, last.question.content, last.history,
                          tools=tools, approval=approval, approver=approver)
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
        summary, last, attached = await self._last_exchange(session_id)
        setup = await turn_setup(self, summary, provider, model, None, rag, {}, None, question,
                                 attached)
        async with self.engine._require_db().write() as s:
            session = await self.branches.owned(s, summary.id)
            row = await self.branches.add_in(s, session, "user", question,
                                             parent_id=last.question.parent_id)
            store_attachments(s, self.engine.user_id, row.id, attached)
        turn = setup.turn(summary.id, row.id, question, last.history, tools=tools,
                          approval=approval, approver=approver)
        async with contextlib.aclosing(run_turn(self, turn)) as events:
            async for event in events:
                yield event

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
        return await turn_scope(self.engine, summary, collections, rag)

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
                if preset.tools is not None:
                    session.tools, session.tools_persona = list(preset.tools), preset.name
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
        """The collections the session searches (empty: all of the user's)."""
        async with self.engine._require_db().write() as s:
            session = await self.branches.owned(s, session_id)
            await replace_collections(self.engine, s, session, names)
        return (await self.engine.sessions.get(session_id)).session

    # -- which session --------------------------------------------------------------------------
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

    async def _last_exchange(self, session_id: int | None) -> tuple[
            SessionSummary, LastExchange, list[LoadedAttachment]]:
        """The session (``session_id``, else the latest), its last question and answer, and
        the files attached to that question."""
        detail = await self._existing_session(session_id)
        last = last_exchange(detail)
        async with self.engine._require_db().read() as s:
            attached = await stored_attachments(s, last.question.id)
        return detail.session, last, attached

    async def _choose_model(self, summary: SessionSummary | None, provider: str | None,
                            model: str | None) -> tuple[str | None, str]:
        # the chat screen's header asks which model a session would use
        return await choose_model(self, summary, provider, model)

    async def _create_in(self, s: AsyncSession, question: str, provider: str | None,
                         model: str | None, system_prompt: str | None,
                         collections: Sequence[str]) -> m.Session:
        session = m.Session(user_id=self.engine.user_id, title=title_from(question),
                            model=model, provider=provider,
                            system_prompt=system_prompt.strip() if system_prompt else None)
        s.add(session)
        await s.flush()
        for row in await collection_rows(self.engine, s, collections):
            s.add(m.SessionCollection(session_id=session.id, collection_id=row.id))
        return session

