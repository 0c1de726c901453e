"""Settings of answering: the chat defaults, budgets, model servers and their models,
personas and their parameters."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, SecretStr, field_validator

from engine.config.base import Section as _Section


class BudgetSettings(_Section):
    """Spending limits for hosted models."""

    daily: float | None = Field(None, ge=0)
    """Maximum cost per day (in the price table's currency). Empty: no limit."""
    monthly: float | None = Field(None, ge=0)
    """Maximum cost per calendar month. Empty: no limit."""
    action: Literal["warn", "refuse"] = "warn"
    """What to do before a call that would pass a limit."""


class ChatSettings(_Section):
    """Answering questions."""

    provider: str | None = None
    """Name of an entry under ``providers``. Empty: the offline extractive answerer."""
    model: str | None = None
    """Model id on that provider."""
    system_prompt: str | None = None
    """System prompt for new sessions. Empty: Parley's grounded-answer prompt."""
    temperature: float | None = Field(None, ge=0, le=2)
    """Sampling temperature. Empty: the server's default."""
    max_tokens: int | None = Field(None, ge=1)
    """Longest answer in tokens. Empty: the server's default."""
    rag: bool = True
    """Search the session's collections for sources before answering."""
    budget: BudgetSettings = BudgetSettings()


class ModelSettings(_Section):
    """What Parley needs to know about one model."""

    context_window: int = Field(8192, ge=256)
    """Tokens the model accepts (prompt and answer together)."""
    input_price: float = Field(0.0, ge=0)
    """Price per million prompt tokens."""
    output_price: float = Field(0.0, ge=0)
    """Price per million completion tokens."""


class ProviderSettings(_Section):
    """A model server."""

    kind: Literal["openai", "extractive"] = "openai"
    """``openai``: any OpenAI-compatible server (OpenAI, Ollama, llama.cpp, vLLM, LM Studio).
    ``extractive``: no model, answers with cited sentences from the sources."""
    base_url: str | None = None
    """API root, e.g. ``http://127.0.0.1:11434/v1``."""
    api_key: SecretStr | None = None
    """API key (prefer ``api_key_env``)."""
    api_key_env: str | None = None
    """Environment variable holding the API key."""
    timeout: float = Field(60.0, gt=0)
    """Seconds to wait for the server to answer or send the next piece."""
    connect_timeout: float = Field(5.0, gt=0)
    """Seconds to wait for a connection."""
    max_retries: int = Field(2, ge=0, le=10)
    """Retries of a failed call before the first token arrives."""
    models: dict[str, ModelSettings] = {}
    """Per-model context window and prices."""




class ChatParams(_Section):
    """Per-session (or per-persona) parameters; empty ones keep the configured value."""

    temperature: float | None = Field(None, ge=0, le=2)
    """Sampling temperature."""
    max_tokens: int | None = Field(None, ge=1)
    """Longest answer in tokens."""
    top_k: int | None = Field(None, ge=1, le=200)
    """Sources given to the model per question."""


class PersonaSettings(_Section):
    """A named chat preset (``parley ask --persona NAME``, Ctrl+N in the app)."""

    description: str | None = None
    """One line shown when choosing a persona."""
    provider: str | None = None
    """Name of an entry under ``providers``. Empty: ``chat.provider``."""
    model: str | None = None
    """Model id on that provider. Empty: the provider's configured model."""
    system_prompt: str | None = None
    """System prompt of its chats."""
    collections: list[str] = []
    """Collections its chats search. Empty: all of them."""
    rag: bool | None = None
    """Search documents before answering. Empty: ``chat.rag``."""
    params: ChatParams = ChatParams()
    first_message: str | None = None
    """A first question put in the prompt box (and asked by ``ask --persona`` with no
    question)."""
    tools: list[str] | None = None
    """Tools its chats may use: ``server.tool`` globs as ``sessions set --tools`` takes them
    (a list, or one comma-separated string), ``all`` or ``none``. Empty: ``tools.enabled``."""

    @field_validator("tools", mode="before")
    @classmethod
    def _tools_words(cls, value: object) -> object:
        # the words of 'sessions set --all-tools/--no-tools', and "a, b" as --tools takes it
        if isinstance(value, str):
            word = value.strip().lower()
            if word in ("all", "none"):
                return ["*"] if word == "all" else []
            return [part.strip() for part in value.split(",") if part.strip()]
        return value
