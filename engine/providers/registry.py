"""Building chat providers from the settings.

``make_chat_provider(settings, name)`` returns the provider configured under
``providers.<name>``; no name, or a provider of kind ``extractive``, gives the offline
``ExtractiveProvider``. The caller owns the provider and closes it with ``aclose()``.
Nothing here connects anywhere: the first request does.
"""

from __future__ import annotations

from engine.config import ModelSettings, Settings
from engine.errors import ConfigError
from engine.providers.base import ChatProvider
from engine.providers.extractive import ExtractiveProvider
from engine.providers.openai_chat import OpenAIChatProvider


def make_chat_provider(settings: Settings, name: str | None = None) -> ChatProvider:
    """The chat provider named ``name`` (usually ``settings.chat.provider``).

    Raises ``ConfigError`` when ``name`` is not defined under ``providers``.
    """
    if name is None:
        return ExtractiveProvider()
    config = settings.providers.get(name)
    if config is None:
        known = ", ".join(sorted(settings.providers)) or "none"
        raise ConfigError(f"provider '{name}' is not defined under 'providers'",
                          f"defined providers: {known}")
    if config.kind == "extractive":
        return ExtractiveProvider(name)
    return OpenAIChatProvider(name, config)


def model_settings(settings: Settings, provider: str | None, model: str | None) -> ModelSettings:
    """The context window and prices of ``model`` on ``provider`` (defaults when unlisted)."""
    config = settings.providers.get(provider) if provider else None
    if config is None or model is None:
        return ModelSettings()
    return config.models.get(model, ModelSettings())
