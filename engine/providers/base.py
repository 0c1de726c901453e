"""The chat provider protocol and the events a provider streams.

A provider turns a list of messages into a stream of events:

* zero or more ``TextDelta`` (pieces of the answer, in order),
* at most one ``StreamUsage`` (the token counts *as the server reported them*; a provider
  that cannot report usage sends none, and the caller estimates and marks it estimated),
* at most one ``ToolCalls`` (the calls the model asked for, assembled; only when ``tools``
  were offered), just before the usage,
* exactly one ``StreamEnd``, always the last event of a stream that completed.

A stream that fails raises a ``engine.errors.ProviderError`` subclass instead of sending
``StreamEnd``; text already yielded stays valid (the caller keeps it as an interrupted
answer). ``StreamInterrupted`` means the failure came after the request was answered.

Consumers that stop early should close the iterator (``await stream.aclose()``, or
``contextlib.aclosing``) or cancel their task: either closes the HTTP response at once,
instead of whenever the garbage collector finalises the generator.

``sources`` are the numbered retrieved passages. A model provider ignores them (the chat
layer already put them in the prompt); the extractive provider answers from them alone.
"""

from __future__ import annotations

import ipaddress
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit


@dataclass(frozen=True, slots=True)
class ToolCall:
    """A tool call as the model sent it: ``arguments`` is the JSON text it wrote (it may be
    invalid: the tool loop answers that with an error result)."""

    id: str
    name: str
    arguments: str


@dataclass(frozen=True, slots=True)
class ToolSpec:
    """A tool offered to the model: its wire name, description and JSON Schema."""

    name: str
    description: str
    parameters: dict[str, object]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One prompt message: ``role`` is ``"system"``, ``"user"``, ``"assistant"`` or
    ``"tool"``. An assistant message may carry ``tool_calls``; a tool message answers the
    call ``tool_call_id``."""

    role: str
    content: str
    tool_calls: tuple[ToolCall, ...] = ()
    tool_call_id: str | None = None


@dataclass(frozen=True, slots=True)
class SourceText:
    """A retrieved passage as numbered in the prompt: cite it as ``[marker]``."""

    marker: int
    text: str
    path: str


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of answer text."""

    text: str


@dataclass(frozen=True, slots=True)
class StreamUsage:
    """Token counts reported by the server for the whole call."""

    prompt_tokens: int
    completion_tokens: int


@dataclass(frozen=True, slots=True)
class StreamEnd:
    """The answer is complete. ``finish_reason`` as the server gave it (``"stop"``,
    ``"length"``, ...), or None when it gave none."""

    finish_reason: str | None


@dataclass(frozen=True, slots=True)
class ToolCalls:
    """The model asked for these calls (in order) instead of, or after, some text."""

    calls: tuple[ToolCall, ...]


ProviderEvent = TextDelta | StreamUsage | ToolCalls | StreamEnd


@runtime_checkable
class ChatProvider(Protocol):
    """What the chat layer needs from a model server (or from the extractive answerer)."""

    name: str
    """The provider's name under ``providers`` in the config."""
    kind: str
    """``"openai"`` or ``"extractive"``."""
    is_local: bool
    """True when calls cost nothing: a loopback server, or no model at all."""

    def stream(
        self,
        messages: Sequence[ChatMessage],
        *,
        model: str,
        temperature: float | None = None,
        max_tokens: int | None = None,
        sources: Sequence[SourceText] = (),
        tools: Sequence[ToolSpec] = (),
    ) -> AsyncIterator[ProviderEvent]:
        """Stream the answer to ``messages`` (see the module docstring for the events).
        ``tools`` are offered to the model; a provider without tool calling ignores them.

        ``temperature`` and ``max_tokens`` left as None use the server's defaults.
        Raises ``ProviderError`` subclasses; never retries once text has been yielded.
        """
        ...

    async def list_models(self) -> list[str]:
        """Ids of the models the server offers."""
        ...

    async def aclose(self) -> None:
        """Release the connection pool. The provider cannot be used afterwards."""
        ...


def is_local_url(url: str) -> bool:
    """True when ``url`` points at this machine (``localhost`` or a loopback address)."""
    host = (urlsplit(url).hostname or "").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
