"""The context window a turn budgets for: what the server says, else the config, else 8,192.

The server's figure is cached in the ``model_info`` table per provider and model, and asked
again when stale (local servers after ``LOCAL_TTL``: they restart with another
``--ctx-size``; hosted ones after ``REMOTE_TTL``). A ``context_window`` set explicitly in
``providers.<name>.models.<model>`` below the server's figure wins (someone limiting the
prompt on purpose); above it, the server's wins (a larger prompt would be cut or refused).
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING

from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from engine.db import models as m
from engine.db.coltypes import utcnow
from engine.providers.registry import model_settings
from engine.types import ContextWindow

if TYPE_CHECKING:
    from engine.facade import Engine

LOCAL_TTL = timedelta(minutes=10)
REMOTE_TTL = timedelta(days=1)


async def server_window(engine: Engine, provider_name: str, model: str, *,
                        refresh: bool = False) -> tuple[int | None, str | None]:
    """(tokens, source) the server reports for ``model``, cached; (None, None) if unknown."""
    from engine.providers.context_window import probe_context_window
    from engine.providers.openai_chat import OpenAIChatProvider

    provider = engine.chat.provider(provider_name)
    if not isinstance(provider, OpenAIChatProvider):
        return None, None
    db = engine._require_db()
    ttl = LOCAL_TTL if provider.is_local else REMOTE_TTL
    if not refresh:
        async with db.read() as s:
            row = await s.get(m.ModelInfo, (provider_name, model))
            if row is not None and row.base_url == provider.base_url \
                    and utcnow() - row.checked_at < ttl:
                return row.context_window, row.source
    tokens, source = await probe_context_window(provider, model)
    try:
        async with db.write() as s:
            await s.execute(delete(m.ModelInfo).where(m.ModelInfo.provider == provider_name,
                                                      m.ModelInfo.model == model))
            s.add(m.ModelInfo(provider=provider_name, model=model, base_url=provider.base_url,
                              context_window=tokens, source=source, checked_at=utcnow()))
    except IntegrityError:
        pass  # another process stored the same facts at the same moment
    return tokens, source


async def context_window(engine: Engine, provider_name: str | None, model: str, *,
                         refresh: bool = False) -> ContextWindow:
    """The window to budget a turn with (see the module docstring)."""
    configured = model_settings(engine.settings, provider_name, model)
    explicit = "context_window" in configured.model_fields_set
    fallback = ContextWindow(configured.context_window, "config" if explicit else "default")
    if provider_name is None:
        return fallback
    tokens, source = await server_window(engine, provider_name, model, refresh=refresh)
    if tokens is None:
        return fallback
    if explicit and configured.context_window < tokens:
        return ContextWindow(configured.context_window, "config (the server allows "
                             f"{tokens:,})")
    return ContextWindow(tokens, source or "server")
