"""What one turn uses, each from the call, else the session, else the configuration: the
provider and model, the system prompt, RAG, the collections it searches and the sampling
parameters, with the model's context window.

``turn_setup`` gathers them before anything is stored, so a turn that cannot run (no model
chosen, attachments too large for the context window) is refused with nothing written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from engine.chat.prompt import DEFAULT_SYSTEM_PROMPT, answer_reserve, fixed_tokens
from engine.chat.turn import EXTRACTIVE, Turn
from engine.errors import ConfigError, ProviderError
from engine.session_setup.attachments import LoadedAttachment, attachment_hits, too_large
from engine.session_setup.scope import resolve_scope
from engine.session_setup.settings import TurnOptions, merged_params, turn_params
from engine.teams import shares
from engine.types import ChatScope, Message, SessionSummary

if TYPE_CHECKING:
    from engine.chat.service import Chat
    from engine.facade import Engine
    from engine.tools.loop import Approver


@dataclass(frozen=True, slots=True)
class TurnSetup:
    """What a turn was set up with (``provider`` None: the extractive answerer)."""

    provider: str | None
    model: str
    system: str
    scope: ChatScope
    options: TurnOptions

    def turn(self, session_id: int, question_id: int, question: str,
             history: tuple[Message, ...], *, tools: bool | None, approval: str | None,
             approver: Approver | None) -> Turn:
        """The turn that answers the stored question ``question_id``."""
        return Turn(session_id, question_id, question, history, self.scope.collections,
                    self.provider, self.model, self.system, self.scope.rag,
                    options=self.options, tools=tools, approval=approval, approver=approver)


async def turn_setup(chat: Chat, summary: SessionSummary | None, provider: str | None,
                     model: str | None, collections: Sequence[str] | None, rag: bool | None,
                     params: Mapping[str, Any], system_prompt: str | None, question: str,
                     attachments: Sequence[LoadedAttachment], *,
                     tools: Sequence[str] | None = None) -> TurnSetup:
    """Everything a turn takes from the call, the session and the configuration; refuses
    attachments that cannot fit before anything is stored. ``tools``: the selection of a
    session about to be created (a persona's); an existing session keeps its own."""
    engine = chat.engine
    name, chosen = await choose_model(chat, summary, provider, model)
    scope = await turn_scope(engine, summary, collections, rag)
    temperature, max_tokens, top_k = turn_params(
        engine, merged_params(summary.params if summary else None, params))
    window = await chat.context_window(name, chosen)
    system = system_prompt_for(engine, summary, system_prompt)
    pinned = tuple(attachment_hits(attachments))
    if pinned:
        reserve = answer_reserve(window.tokens, max_tokens)
        needed = fixed_tokens(system, question, pinned)
        if needed > window.tokens - reserve:
            raise too_large(attachments, needed, window.tokens, reserve)
    options = TurnOptions(temperature, max_tokens, top_k, window.tokens, scope, pinned,
                          tools=summary.tools if summary else
                          (None if tools is None else tuple(tools)))
    return TurnSetup(name, chosen, system, scope, options)


async def choose_model(chat: Chat, summary: SessionSummary | None, provider: str | None,
                       model: str | None) -> tuple[str | None, str]:
    """(provider name or None for the extractive answerer, model id)."""
    settings = chat.engine.settings
    name = provider or (summary.provider if summary else None) or settings.chat.provider
    if chat.provider(name).kind == EXTRACTIVE:
        if model and name is None:
            raise ConfigError(f"--model {model} needs a model server, and no chat provider "
                              "is configured", "set chat.provider, or pass --provider NAME")
        return (name if name in settings.providers else None), EXTRACTIVE
    if model:
        return name, model
    if summary and summary.model and (summary.provider or settings.chat.provider) == name:
        return name, summary.model
    if settings.chat.model and settings.chat.provider == name:
        return name, settings.chat.model
    configured = settings.providers[name].models if name else {}
    if configured:
        return name, next(iter(configured))
    try:
        offered = ", ".join(await chat.provider(name).list_models()) or "none"
    except ProviderError as exc:
        offered = f"unknown ({exc.message})"
    raise ConfigError(f"no model chosen for provider '{name}'",
                      f"set chat.model or pass --model; the server offers: {offered}")


async def turn_scope(engine: Engine, summary: SessionSummary | None,
                     collections: Sequence[str] | None, rag: bool | None) -> ChatScope:
    """Which documents a turn searches (``summary`` None: a new session's turn)."""
    use_rag = rag_for(engine, rag if rag is not None else (summary.rag if summary else None))
    return await resolve_scope(engine, await turn_collections(engine, summary, collections),
                               rag=use_rag)


def system_prompt_for(engine: Engine, summary: SessionSummary | None, given: str | None) -> str:
    return (given or (summary.system_prompt if summary else None)
            or engine.settings.chat.system_prompt or DEFAULT_SYSTEM_PROMPT)


def rag_for(engine: Engine, given: bool | None) -> bool:
    return engine.settings.chat.rag if given is None else given


async def turn_collections(engine: Engine, summary: SessionSummary | None,
                           given: Sequence[str] | None) -> tuple[str, ...]:
    """The collections a turn is scoped to (labels: ``owner/name`` for a shared one);
    empty: all of the user's."""
    if given:
        async with engine._require_db().read() as s:
            return tuple(v.label for v in await shares.resolve(
                s, engine.user_id, given, quote=False))
    if summary and summary.collections:
        return tuple(summary.collections)
    return ()
