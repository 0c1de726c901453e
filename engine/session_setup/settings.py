"""The settings a session keeps, and what a turn takes from them.

A session stores its provider, model, system prompt (encrypted), collections, RAG switch
and parameters (temperature, max_tokens, top_k). Anything unset falls back to the
configuration, so changing ``chat.*`` still reaches sessions that never chose. Changes
take effect on the next question.

Choosing a model checks that the server has it (its ``/models`` list, cached for a few
minutes, the configured models first): a model it does not have is refused with the list,
and the session keeps its old one. A server that cannot be asked is no reason to refuse:
the model is kept, and the caller is told it was not checked.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError
from sqlalchemy import delete
from sqlalchemy.ext.asyncio import AsyncSession

from engine.config import ChatParams
from engine.db import models as m
from engine.errors import ConfigError, ProviderError, UnknownModel, UsageError
from engine.teams import shares
from engine.types import ChatScope, SearchHit, SessionSummary

if TYPE_CHECKING:
    from engine.facade import Engine

MODELS_TTL = 300.0  # seconds a provider's model list is reused
PARAM_NAMES = tuple(ChatParams.model_fields)
_CLEAR = ("", "none", "null", "default")


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
"""An argument not given (None means: back to the configured value)."""


@dataclass(frozen=True, slots=True)
class TurnOptions:
    """What a turn takes from the session and the configuration, resolved."""

    temperature: float | None
    max_tokens: int | None
    top_k: int
    context_window: int
    scope: ChatScope | None = None
    attachments: tuple[SearchHit, ...] = ()
    tools: tuple[str, ...] | None = None  # the session's tools (engine.tools.selection)


def parse_params(values: Mapping[str, Any]) -> dict[str, Any]:
    """``K=V`` parameters checked: known names, valid values. A value of ``""``, ``none`` or
    ``default`` maps to None (back to the configured value). Raises ``UsageError``."""
    unknown = sorted(set(values) - set(PARAM_NAMES))
    if unknown:
        raise UsageError(f"unknown parameter {', '.join(unknown)}",
                         f"known: {', '.join(PARAM_NAMES)}")
    cleaned = {k: None if isinstance(v, str) and v.strip().lower() in _CLEAR else v
               for k, v in values.items()}
    try:
        checked = ChatParams(**{k: v for k, v in cleaned.items() if v is not None})
    except ValidationError as exc:
        err = exc.errors()[0]
        name = ".".join(str(p) for p in err["loc"])
        msg = str(err["msg"]).removeprefix("Value error, ")
        raise UsageError(f"invalid value for parameter {name}: {msg}",
                         "temperature 0-2, max_tokens and top_k whole numbers") from None
    return {k: (getattr(checked, k) if v is not None else None) for k, v in cleaned.items()}


def merged_params(*layers: Mapping[str, Any] | None) -> dict[str, Any]:
    """Parameters of later layers over earlier ones (None values remove a key)."""
    out: dict[str, Any] = {}
    for layer in layers:
        for key, value in (layer or {}).items():
            if value is None:
                out.pop(key, None)
            else:
                out[key] = value
    return out


def turn_params(engine: Engine, params: Mapping[str, Any]) -> tuple[float | None, int | None,
                                                                    int]:
    """(temperature, max_tokens, top_k): the session's, else the configured ones."""
    chat, retrieval = engine.settings.chat, engine.settings.retrieval
    temperature = params.get("temperature", chat.temperature)
    max_tokens = params.get("max_tokens", chat.max_tokens)
    return temperature, max_tokens, int(params.get("top_k") or retrieval.top_k)


async def list_models(engine: Engine, provider_name: str | None, *,
                      refresh: bool = False) -> list[str]:
    """The provider's models, configured ones first, then the server's (cached)."""
    configured = list(engine.settings.providers[provider_name].models) if provider_name \
        and provider_name in engine.settings.providers else []
    provider = engine.chat.provider(provider_name)
    cache: dict[str, tuple[float, list[str]]] = engine.chat.__dict__.setdefault("_models", {})
    key = provider_name or ""
    hit = cache.get(key)
    if hit is None or refresh or time.monotonic() - hit[0] > MODELS_TTL:
        hit = (time.monotonic(), await provider.list_models())
        cache[key] = hit
    return list(dict.fromkeys([*configured, *hit[1]]))


async def check_model(engine: Engine, provider_name: str | None, model: str) -> str | None:
    """Refuse a model the server does not list (``UnknownModel``). Returns a warning when
    the server could not be asked, else None."""
    try:
        offered = await list_models(engine, provider_name, refresh=True)
    except ProviderError as exc:
        return f"the model list could not be read ({exc.message}); '{model}' was not checked"
    if model not in offered:
        where = f"provider '{provider_name}'" if provider_name else "the offline answerer"
        raise UnknownModel(f"model '{model}' is not on {where}; the session keeps its model",
                           f"available: {', '.join(offered) or 'none'}")
    return None


async def configure(engine: Engine, session_id: int, *, provider: Any = UNSET,
                    model: Any = UNSET, system_prompt: Any = UNSET, collections: Any = UNSET,
                    rag: Any = UNSET, params: Mapping[str, Any] | None = None,
                    check: bool = True, tools: Any = UNSET) -> tuple[SessionSummary, list[str]]:
    """Change a session's settings; each argument left UNSET stays. Returns the session and
    warnings. Nothing changes when one value is refused."""
    chat = engine.chat
    warnings: list[str] = []
    current = (await engine.sessions.get(session_id)).session
    if provider is not UNSET:
        provider = provider or None  # '' returns to the configured provider
    if provider is not UNSET and provider is not None and provider != "extractive" \
            and provider not in engine.settings.providers:
        raise ConfigError(f"provider '{provider}' is not defined under 'providers'",
                          f"defined: {', '.join(sorted(engine.settings.providers)) or 'none'}")
    new_provider = current.provider if provider is UNSET else provider
    if model is not UNSET and model and check:
        name = new_provider or engine.settings.chat.provider
        warning = await check_model(engine, name, model)
        if warning:
            warnings.append(warning)
    checked = parse_params(params) if params else {}
    if tools is not UNSET and tools is not None:  # None: back to the configuration
        from engine.tools.selection import parse_selection

        tools = parse_selection(tools, ["parley", *engine.settings.mcp_servers])
    async with engine._require_db().write() as s:
        session = await chat.branches.owned(s, session_id)
        if provider is not UNSET:
            session.provider = provider or None
            if model is UNSET and provider != current.provider:
                session.model = None  # a model of the old provider means nothing on the new
        if model is not UNSET:
            session.model = model or None
        if system_prompt is not UNSET:
            text = (system_prompt or "").strip()
            session.system_prompt = text or None
        if rag is not UNSET:
            session.rag = rag
        if checked:
            session.params = merged_params(session.params, checked) or None
        if tools is not UNSET:
            session.tools, session.tools_persona = tools, None
        if collections is not UNSET:
            await replace_collections(engine, s, session, list(collections or ()))
    return (await engine.sessions.get(session_id)).session, warnings


def described(summary: SessionSummary, engine: Engine) -> dict[str, Any]:
    """A session's effective settings, each with where it comes from (for ``sessions show``)."""
    chat, retrieval = engine.settings.chat, engine.settings.retrieval
    params = summary.params or {}

    def pick(own: Any, configured: Any) -> dict[str, Any]:
        return {"value": own if own is not None else configured,
                "from": "session" if own is not None else "config"}

    provider = summary.provider or chat.provider
    return {
        "provider": pick(summary.provider, chat.provider or "extractive"),
        "model": pick(summary.model, chat.model if provider == chat.provider else None),
        "system_prompt": pick(summary.system_prompt, chat.system_prompt),
        "collections": {"value": list(summary.collections) or "all",
                        "from": "session" if summary.collections else "default"},
        "rag": pick(summary.rag, chat.rag),
        "temperature": pick(params.get("temperature"), chat.temperature),
        "max_tokens": pick(params.get("max_tokens"), chat.max_tokens),
        "top_k": pick(params.get("top_k"), retrieval.top_k),
        "tools": {"value": _tools_text(summary, engine),
                  "from": _tools_from(summary)},
    }


def _tools_from(summary: SessionSummary) -> str:
    if summary.tools is None:
        return "config"
    return f"persona {summary.tools_persona}" if summary.tools_persona else "session"


def _tools_text(summary: SessionSummary, engine: Engine) -> str:
    from engine.tools.selection import describe

    return describe(summary.tools, engine.settings.tools.enabled)


async def collection_rows(engine: Engine, s: AsyncSession,
                          names: Sequence[str]) -> list[m.Collection]:
    # the user's own, or shared with them (``owner/name``), in the order given
    return [v.row for v in await shares.resolve(s, engine.user_id, names, quote=False)]


async def replace_collections(engine: Engine, s: AsyncSession, session: m.Session,
                              names: Sequence[str]) -> None:
    """Make ``names`` the collections ``session`` searches (empty: all of the user's)."""
    rows = await collection_rows(engine, s, names)
    await s.execute(delete(m.SessionCollection)
                    .where(m.SessionCollection.session_id == session.id))
    s.add_all(m.SessionCollection(session_id=session.id, collection_id=row.id)
              for row in rows)
