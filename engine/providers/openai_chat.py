"""The OpenAI-compatible chat provider: streaming chat completions over httpx.

OpenAI, Ollama, llama.cpp's server, vLLM and LM Studio all accept
``POST {base_url}/chat/completions`` with ``stream: true`` and answer with server-sent
events, one ``data: {json}`` line per chunk, ending with ``data: [DONE]``. Usage comes in a
chunk of its own (OpenAI, with ``stream_options.include_usage``) or inside the last content
chunk (llama.cpp); both are read, and the last one seen is reported once, before the end.

Timeouts: ``connect_timeout`` bounds connecting; ``timeout`` bounds every wait for the
server after that (the response headers, then each next piece), so a server that accepts
and goes silent fails within ``timeout`` instead of hanging.

Retries (``max_retries``, exponential backoff, ``Retry-After`` honoured up to 10 s) happen
only before a response: connection failures, 429 and 5xx. A server that accepted the request
and went silent is not retried (it may be generating, and paying twice helps nobody), and
nothing is ever retried once text has been yielded.

A stream that ends without ``[DONE]`` raises ``StreamInterrupted``, unless a
``finish_reason`` already arrived: then the answer is complete and only the usage is lost.

Tools offered to the model go in the request's ``tools``; streamed calls are assembled by
``engine.providers.tool_calls`` and sent as one ``ToolCalls`` event before the usage. A
server that refuses to stream with tools ("Cannot use tools with stream", older llama.cpp)
gets the same request unstreamed, and its answer is sent as the same events.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from engine.config import ProviderSettings
from engine.errors import (
    ConfigError,
    ContextTooLong,
    ProviderAuthError,
    ProviderError,
    ProviderUnreachable,
    StreamInterrupted,
    UnknownModel,
)
from engine.providers.base import (
    ChatMessage,
    ProviderEvent,
    SourceText,
    StreamEnd,
    StreamUsage,
    TextDelta,
    ToolCalls,
    ToolSpec,
    is_local_url,
)
from engine.providers.tool_calls import ToolCallAccumulator, wire_message, wire_tools

DEFAULT_BASE_URL = "https://api.openai.com/v1"
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})
_MAX_RETRY_AFTER = 10.0
_KEPT = "try again; if it keeps happening, check the server's logs"
_NO_STREAM_TOOLS = "cannot use tools with stream"
_CONTEXT_WORDS = ("context length", "context_length", "context window", "maximum context",
                  "too many tokens", "exceeds the context", "prompt is too long")


class _Retry(Exception):
    """A failure before any response that is worth another attempt."""

    def __init__(self, error: ProviderError, delay: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.delay = delay


def _final(failure: _Retry | ProviderError) -> ProviderError:
    """The error to raise where no retry is attempted."""
    return failure.error if isinstance(failure, _Retry) else failure


class OpenAIChatProvider:
    """A chat provider for any OpenAI-compatible server (see the module docstring)."""

    kind = "openai"

    def __init__(self, name: str, settings: ProviderSettings, *,
                 retry_backoff: float = 0.5) -> None:
        base = (settings.base_url or DEFAULT_BASE_URL).rstrip("/")
        if not base.startswith(("http://", "https://")):
            raise ConfigError(f"providers.{name}.base_url '{base}' is not an http(s) URL",
                              "use e.g. http://127.0.0.1:11434/v1")
        self.name = name
        self.base_url = base
        self._who = f"provider '{name}'"
        self.is_local = is_local_url(base)
        self._settings = settings
        self._retry_backoff = retry_backoff
        timeout = httpx.Timeout(settings.timeout, connect=settings.connect_timeout,
                                pool=settings.connect_timeout)
        # Proxy variables are meant for the internet; they must not capture loopback traffic.
        self._client = httpx.AsyncClient(timeout=timeout, trust_env=not self.is_local)

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._client.aclose()

    def _headers(self) -> dict[str, str]:
        key = self._settings.api_key.get_secret_value() if self._settings.api_key else None
        if not key and self._settings.api_key_env:
            key = os.environ.get(self._settings.api_key_env) or None
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def list_models(self) -> list[str]:
        """Ids of the models ``GET {base_url}/models`` lists, in the server's order."""
        url = f"{self.base_url}/models"
        try:
            response = await self._client.get(url, headers=self._headers())
        except httpx.TransportError as exc:
            raise _final(self._transport_error(exc, url, answered=False)) from None
        if response.status_code >= 400:
            raise _final(await self._http_error(_Failure.of(response), url, model=None))
        try:
            return [str(item["id"]) for item in response.json()["data"]]
        except (ValueError, KeyError, TypeError):
            raise ProviderError(f"{url} did not return a model list",
                                f"check providers.{self.name}.base_url") from None

    async def stream(self, messages: Sequence[ChatMessage], *, model: str,
                     temperature: float | None = None, max_tokens: int | None = None,
                     sources: Sequence[SourceText] = (),
                     tools: Sequence[ToolSpec] = ()) -> AsyncIterator[ProviderEvent]:
        """Stream a chat completion. ``sources`` is ignored: they are in the prompt."""
        body: dict[str, Any] = {
            "model": model,
            "messages": [wire_message(m) for m in messages],
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if tools:
            # No tool_choice: Ollama rejects it, and "auto" is every server's default.
            body["tools"] = wire_tools(tools)
        if temperature is not None:
            body["temperature"] = temperature
        if max_tokens is not None:
            body["max_tokens"] = max_tokens
        attempt = 0
        while True:
            try:
                # aclosing: closing this generator must close the inner one (and its response)
                # now, not when the garbage collector gets to it.
                async with contextlib.aclosing(self._attempt(body, model)) as events:
                    async for event in events:
                        yield event
                return
            except (_Retry, ProviderError) as failed:  # raised only before the first event
                error = failed.error if isinstance(failed, _Retry) else failed
                if tools and _NO_STREAM_TOOLS in error.message.lower():
                    async for event in self._unstreamed(body, model):
                        yield event
                    return
                if not isinstance(failed, _Retry):
                    raise
                retry = failed
                if attempt >= self._settings.max_retries:
                    raise retry.error from None
                await asyncio.sleep(retry.delay if retry.delay is not None
                                    else self._retry_backoff * 2 ** attempt)
                attempt += 1

    async def _attempt(self, body: dict[str, Any], model: str) -> AsyncIterator[ProviderEvent]:
        url = f"{self.base_url}/chat/completions"
        answered = False
        received = 0
        finish: str | None = None
        usage: StreamUsage | None = None
        calls = ToolCallAccumulator()
        try:
            async with self._client.stream("POST", url, json=body, headers=self._headers()) as resp:
                answered = True
                if resp.status_code >= 400:
                    await resp.aread()
                    raise await self._http_error(_Failure.of(resp), url, model)
                async for line in resp.aiter_lines():
                    # Every OpenAI-compatible server sends one JSON object per "data:" line;
                    # comments, "event:" fields and blank separators carry nothing we need.
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        break
                    chunk = self._parse_chunk(data, url, received)
                    if "error" in chunk:
                        message, _ = _fields_of(chunk)
                        raise StreamInterrupted(
                            f"{self._who} reported an error after {received} characters: {message}",
                            _KEPT)
                    if chunk.get("usage"):
                        usage = _usage(chunk["usage"]) or usage
                    for choice in chunk.get("choices") or ():
                        if choice.get("index", 0) != 0:
                            continue
                        delta = choice.get("delta") or {}
                        text = delta.get("content")
                        if text:
                            received += len(text)
                            yield TextDelta(text)
                        if delta.get("tool_calls"):
                            calls.add(delta["tool_calls"])
                        finish = choice.get("finish_reason") or finish
                else:
                    if finish is None:
                        raise StreamInterrupted(
                            f"the stream from {url} ended after {received} characters "
                            "without finishing", _KEPT)
        except httpx.TransportError as exc:
            if finish is None:
                raise self._transport_error(exc, url, answered, received) from None
        assembled = calls.calls()
        if assembled:  # whatever finish_reason said ("stop" with calls happens)
            yield ToolCalls(assembled)
        if usage is not None:
            yield usage
        yield StreamEnd(finish)

    async def _unstreamed(self, body: dict[str, Any], model: str) -> AsyncIterator[ProviderEvent]:
        """The request without streaming; the answer as the events a stream would send."""
        url = f"{self.base_url}/chat/completions"
        plain = {k: v for k, v in body.items() if k not in ("stream", "stream_options")}
        try:
            response = await self._client.post(url, json=plain, headers=self._headers())
        except httpx.TransportError as exc:
            raise _final(self._transport_error(exc, url, answered=False)) from None
        if response.status_code >= 400:
            raise _final(await self._http_error(_Failure.of(response), url, model))
        try:
            data = response.json()
            choice = data["choices"][0]
            message = choice.get("message") or {}
        except (ValueError, KeyError, IndexError, TypeError):
            raise StreamInterrupted(f"{url} sent a malformed answer", _KEPT) from None
        if message.get("content"):
            yield TextDelta(str(message["content"]))
        calls = ToolCallAccumulator()
        calls.add(message.get("tool_calls"))
        if calls.calls():
            yield ToolCalls(calls.calls())
        usage = _usage(data.get("usage")) if data.get("usage") else None
        if usage is not None:
            yield usage
        yield StreamEnd(choice.get("finish_reason"))

    def _parse_chunk(self, data: str, url: str, received: int) -> dict[str, Any]:
        try:
            chunk = json.loads(data)
        except ValueError:
            chunk = None
        if not isinstance(chunk, dict):
            raise StreamInterrupted(f"{url} sent a malformed event after {received} characters",
                                    _KEPT)
        return chunk

    def _transport_error(self, exc: httpx.TransportError, url: str, answered: bool,
                         received: int = 0) -> _Retry | ProviderError:
        """Map an httpx failure. Retryable (a ``_Retry``) only if the server never answered."""
        limit = self._settings.timeout
        hint = f"start the model server, or check providers.{self.name}.base_url"
        if answered:
            what = (f"no data for {limit:g} s" if isinstance(exc, httpx.TimeoutException)
                    else "the connection dropped")
            return StreamInterrupted(
                f"the stream from {url} stopped after {received} characters: {what}", _KEPT)
        if isinstance(exc, httpx.ConnectTimeout | httpx.ConnectError | httpx.PoolTimeout):
            reason = str(exc) or type(exc).__name__
            return _Retry(ProviderUnreachable(f"cannot reach {self._who} at {url}: {reason}", hint))
        if isinstance(exc, httpx.TimeoutException):
            return ProviderUnreachable(
                f"{self._who} at {url} accepted the connection but did not answer in {limit:g} s",
                f"the server may be busy or loading the model; raise providers.{self.name}.timeout")
        return _Retry(ProviderUnreachable(
            f"{self._who} at {url} closed the connection without answering", hint))

    async def _http_error(self, failure: _Failure, url: str,
                          model: str | None) -> _Retry | ProviderError:
        """Map an HTTP error status (and the server's error message) to a typed error."""
        status, message, code = failure.status, failure.message, failure.code
        lowered = message.lower()
        if status in (401, 403):
            env = self._settings.api_key_env
            hint = (f"set the environment variable {env} to a valid API key" if env else
                    f"set providers.{self.name}.api_key_env to the name of an environment "
                    "variable holding the API key")
            return ProviderAuthError(f"{self._who} refused the API key (HTTP {status}): {message}",
                                     hint)
        unknown = code == "model_not_found" or (status == 404 and "model" in lowered)
        if unknown and model is not None:
            try:
                available = ", ".join(await self.list_models()) or "none"
            except ProviderError:
                available = "unknown (the model list failed too)"
            return UnknownModel(f"model '{model}' is not on {self._who} ({self.base_url})",
                                f"available models: {available}; set chat.model to one of them")
        if code == "context_length_exceeded" or any(word in lowered for word in _CONTEXT_WORDS):
            return ContextTooLong(f"the prompt is too long for this model: {message}",
                                  "start a new session, shorten the question or use fewer sources")
        error = ProviderError(f"{self._who} at {url} answered HTTP {status}: {message}",
                              "the server is busy or failing; try again later"
                              if status in _RETRY_STATUS else
                              f"check providers.{self.name}.base_url and chat.model")
        return _Retry(error, failure.retry_after) if status in _RETRY_STATUS else error


@dataclass(frozen=True, slots=True)
class _Failure:
    """What a server said when it refused a request."""

    status: int
    message: str
    code: str | None = None
    retry_after: float | None = None

    @classmethod
    def of(cls, response: httpx.Response) -> _Failure:
        try:
            payload: Any = response.json()
        except ValueError:
            payload = response.text
        message, code = _fields_of(payload)
        try:
            retry_after: float | None = min(max(float(response.headers["retry-after"]), 0.0),
                                            _MAX_RETRY_AFTER)
        except (KeyError, ValueError):  # absent, or an HTTP date: use our own backoff
            retry_after = None
        return cls(response.status_code, message, code, retry_after)


def _fields_of(payload: Any) -> tuple[str, str | None]:
    """(message, code) from OpenAI's ``{"error": {...}}``, a bare ``{"error": "..."}`` or text."""
    error = payload.get("error", payload) if isinstance(payload, dict) else payload
    if isinstance(error, dict):
        code = error.get("code") or error.get("type")
        return str(error.get("message") or error.get("detail") or error), (
            str(code) if code is not None else None)
    return str(error).strip()[:300] or "no details", None


def _usage(data: Any) -> StreamUsage | None:
    try:
        return StreamUsage(int(data.get("prompt_tokens") or 0),
                           int(data.get("completion_tokens") or 0))
    except (AttributeError, TypeError, ValueError):
        return None
