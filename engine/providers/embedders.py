"""Embedders: text to unit vectors, offline (bundled MiniLM) or through a model server.

Token usage: ``embed_documents``/``embed_query`` return bare vectors, as the protocol says.
To record usage, call ``embed(texts)`` instead: it returns an ``Embeddings`` value with the
vectors and the tokens of that very call (``prompt_tokens``; ``estimated`` is True when the
server reported nothing and the count is a guess). It is a return value, not an attribute
such as ``last_usage``, so concurrent calls on one embedder cannot mix up their counts.
The local model reports the WordPiece tokens it read (after truncation); it costs nothing.

The dimension of a server's model is learned from its first answer; ``await probe()``
makes that first call when the dimension is needed before anything is embedded (creating
a collection). ``dimension`` raises ``ProviderError`` until it is known.
"""

from __future__ import annotations

import asyncio
import math
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import httpx
import numpy as np

from engine.config import ProviderSettings, Settings
from engine.errors import (
    ConfigError,
    ContextTooLong,
    ProviderAuthError,
    ProviderError,
    ProviderUnreachable,
    UnknownModel,
)
from engine.providers import local_embedder

__all__ = ["Embedder", "Embeddings", "LocalEmbedder", "OpenAIEmbedder", "count_tokens",
           "make_embedder"]

LOCAL_MODELS = frozenset({"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"})


@dataclass(frozen=True, slots=True)
class Embeddings:
    """Vectors of one ``embed`` call and the tokens it cost."""

    vectors: np.ndarray  # float32 (n, dimension), L2-normalised
    prompt_tokens: int
    estimated: bool = False


class Embedder(Protocol):
    """Turns texts into L2-normalised float32 vectors."""

    name: str
    """Stored with each collection: ``local/all-minilm-l6-v2``, ``openai:<provider>/<model>``."""
    dimension: int
    """Vector length; a server's is known after its first answer (see ``probe``)."""
    max_tokens: int
    """Longest input the model reads; longer texts are truncated (local) or refused."""

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Vectors ``(len(texts), dimension)`` and the token usage of this call."""
        ...

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``(len(texts), dimension)``, L2-normalised, in the order of ``texts``."""
        ...

    async def embed_query(self, text: str) -> np.ndarray:
        """float32 ``(dimension,)``, L2-normalised."""
        ...

    async def probe(self) -> int:
        """The dimension, asking the server once if it is not known yet."""
        ...

    async def aclose(self) -> None:
        """Release connections and memory."""
        ...


def count_tokens(text: str) -> int:
    """WordPiece tokens of ``text`` for the bundled model, without its two special tokens.

    Fast (the Rust tokenizer alone, about 3 MB/s; the model is not loaded): the chunker's
    default counter.
    """
    return local_embedder.count_tokens(text)


class LocalEmbedder:
    """all-MiniLM-L6-v2 (int8 ONNX, 384 dimensions, 256 tokens), fully offline.

    Loaded on first use, once; inference runs in a worker thread, in batches of
    ``batch_size`` texts sorted by length.
    """

    name = "local/all-minilm-l6-v2"
    dimension = local_embedder.DIMENSION
    max_tokens = local_embedder.MAX_TOKENS

    def __init__(self, *, threads: int = 0, batch_size: int = 16) -> None:
        self.model = local_embedder.MiniLM(threads=threads, batch_size=batch_size)

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Vectors and the tokens the model read (exact)."""
        vectors, tokens = await asyncio.to_thread(self.model.encode, list(texts))
        return Embeddings(vectors, tokens)

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``(len(texts), 384)`` unit vectors."""
        return (await self.embed(texts)).vectors

    async def embed_query(self, text: str) -> np.ndarray:
        """float32 ``(384,)`` unit vector. The model uses no query prefix."""
        return (await self.embed([text])).vectors[0]

    async def probe(self) -> int:
        """384, without loading the model."""
        return self.dimension

    async def aclose(self) -> None:
        """Free the model; a later call loads it again."""
        self.model.close()


class OpenAIEmbedder:
    """An OpenAI-compatible ``POST {base_url}/embeddings`` (OpenAI, Ollama, llama.cpp, vLLM,
    LM Studio). Vectors are re-normalised: not every server returns unit vectors."""

    def __init__(self, provider_name: str, provider: ProviderSettings, model: str, *,
                 batch_size: int = 64, max_tokens: int = 8191) -> None:
        if not provider.base_url:
            raise ConfigError(f"providers.{provider_name}.base_url is not set",
                              "e.g. http://127.0.0.1:11434/v1 for Ollama")
        self.name = f"openai:{provider_name}/{model}"
        self.model = model
        self.max_tokens = max_tokens
        self.url = provider.base_url.rstrip("/") + "/embeddings"
        self.batch_size = batch_size
        self._provider_name = provider_name
        self._settings = provider
        self._dimension: int | None = None
        self._client: httpx.AsyncClient | None = None
        self._client_loop: asyncio.AbstractEventLoop | None = None

    @property
    def dimension(self) -> int:
        """The model's dimension, known after the first call (see ``probe``)."""
        if self._dimension is None:
            raise ProviderError(f"the dimension of {self.name} is not known yet",
                                "call probe() or embed something first")
        return self._dimension

    async def probe(self) -> int:
        """The dimension, learned with one small request when not known yet."""
        if self._dimension is None:
            await self.embed(["dimension probe"])
        return self.dimension

    async def embed(self, texts: Sequence[str]) -> Embeddings:
        """Vectors and the usage the server reported (estimated at 4 chars a token if none)."""
        parts: list[np.ndarray] = []
        tokens = 0
        estimated = False
        for first in range(0, len(texts), self.batch_size):
            batch = list(texts[first:first + self.batch_size])
            vectors, used = await self._post(batch)
            parts.append(vectors)
            if used is None:
                estimated = True
                used = sum(math.ceil(len(t) / 4) for t in batch)
            tokens += used
        if not parts:
            return Embeddings(np.zeros((0, self._dimension or 0), np.float32), 0)
        return Embeddings(np.concatenate(parts), tokens, estimated)

    async def embed_documents(self, texts: Sequence[str]) -> np.ndarray:
        """float32 ``(len(texts), dimension)`` unit vectors."""
        return (await self.embed(texts)).vectors

    async def embed_query(self, text: str) -> np.ndarray:
        """float32 ``(dimension,)`` unit vector."""
        return (await self.embed([text])).vectors[0]

    async def aclose(self) -> None:
        """Close the HTTP connections."""
        if self._client is not None:
            client, self._client = self._client, None
            await client.aclose()

    def _http(self) -> httpx.AsyncClient:
        loop = asyncio.get_running_loop()
        if self._client is None or self._client_loop is not loop:
            # an httpx pool belongs to the event loop that opened it
            timeout = httpx.Timeout(self._settings.timeout, connect=self._settings.connect_timeout)
            self._client = httpx.AsyncClient(timeout=timeout, headers=self._headers())
            self._client_loop = loop
        return self._client

    def _headers(self) -> dict[str, str]:
        settings = self._settings
        key = settings.api_key.get_secret_value() if settings.api_key else None
        if not key and settings.api_key_env:
            key = os.environ.get(settings.api_key_env)
            if not key:
                raise ProviderAuthError(
                    f"environment variable {settings.api_key_env} is not set",
                    f"export it, or change providers.{self._provider_name}.api_key_env")
        return {"Authorization": f"Bearer {key}"} if key else {}

    async def _post(self, batch: list[str]) -> tuple[np.ndarray, int | None]:
        # Servers reject empty input strings; a space embeds as "nothing" just the same.
        body = {"model": self.model, "input": [t if t.strip() else " " for t in batch]}
        retries = self._settings.max_retries
        for attempt in range(retries + 1):
            try:
                response = await self._http().post(self.url, json=body)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                if attempt < retries:
                    await asyncio.sleep(min(0.5 * 2 ** attempt, 8.0))
                    continue
                reason = str(exc) or type(exc).__name__
                raise ProviderUnreachable(f"cannot reach the embedding server at {self.url}: "
                                          f"{reason}", self._url_hint()) from None
            except httpx.TimeoutException:
                raise ProviderUnreachable(
                    f"the embedding server at {self.url} did not answer within "
                    f"{self._settings.timeout:g} s",
                    f"raise providers.{self._provider_name}.timeout or check the server") from None
            except httpx.HTTPError as exc:
                raise ProviderError(f"embedding request to {self.url} failed: {exc}") from None
            if response.status_code in (429, 502, 503, 504) and attempt < retries:
                await asyncio.sleep(_retry_after(response, attempt))
                continue
            return self._parse(response, len(batch))
        raise AssertionError("unreachable")  # the loop always returns or raises

    def _url_hint(self) -> str:
        return f"is the server running? check providers.{self._provider_name}.base_url"

    def _parse(self, response: httpx.Response, count: int) -> tuple[np.ndarray, int | None]:
        status = response.status_code
        if status >= 400:
            message = _error_message(response)
            if status in (401, 403):
                raise ProviderAuthError(f"the server at {self.url} refused the API key "
                                        f"(HTTP {status}): {message}", self._key_hint())
            if status == 404:
                hint = "check embedding.model" if "model" in message.lower() else \
                    f"check embedding.model and providers.{self._provider_name}.base_url " \
                    "(it usually ends in /v1)"
                raise UnknownModel(f"model '{self.model}' not found at {self.url} "
                                   f"(HTTP 404): {message}", hint)
            if status in (400, 413) and any(w in message.lower() for w in
                                            ("context", "too long", "maximum", "too many tokens")):
                raise ContextTooLong(f"text too long for {self.model}: {message}",
                                     "lower retrieval.chunk_tokens")
            raise ProviderError(f"the embedding server at {self.url} failed "
                                f"(HTTP {status}): {message}")
        try:
            payload = response.json()
            rows = sorted(payload["data"], key=lambda row: row["index"])
            vectors = np.array([row["embedding"] for row in rows], dtype=np.float32)
        except (ValueError, KeyError, TypeError) as exc:
            raise ProviderError(f"malformed embeddings response from {self.url}: "
                                f"{type(exc).__name__}: {exc}") from None
        if vectors.ndim != 2 or vectors.shape[0] != count or vectors.shape[1] == 0:
            raise ProviderError(f"malformed embeddings response from {self.url}: expected "
                                f"{count} vectors, got shape {vectors.shape}")
        if self._dimension is None:
            self._dimension = int(vectors.shape[1])
        elif vectors.shape[1] != self._dimension:
            raise ProviderError(f"{self.url} returned {vectors.shape[1]}-dimensional vectors "
                                f"after {self._dimension}-dimensional ones")
        usage = payload.get("usage") if isinstance(payload, dict) else None
        tokens = usage.get("prompt_tokens") if isinstance(usage, dict) else None
        return ensure_unit_rows(vectors), tokens if isinstance(tokens, int) else None

    def _key_hint(self) -> str:
        env = self._settings.api_key_env
        where = f"the environment variable {env}" if env else \
            f"providers.{self._provider_name}.api_key"
        return f"check the API key in {where}"


def _error_message(response: httpx.Response) -> str:
    try:
        payload: Any = response.json()
    except ValueError:
        return response.text.strip()[:200] or response.reason_phrase
    if isinstance(payload, dict):
        error = payload.get("error", payload.get("detail", payload))
        if isinstance(error, dict):
            error = error.get("message", error)
        return str(error)[:200]
    return str(payload)[:200]


def _retry_after(response: httpx.Response, attempt: int) -> float:
    try:
        return min(float(response.headers.get("retry-after", "")), 30.0)
    except ValueError:
        return min(0.5 * 2 ** attempt, 8.0)


def make_embedder(settings: Settings) -> Embedder:
    """The embedder ``settings.embedding`` describes. Raises ``ConfigError``."""
    emb = settings.embedding
    if emb.provider == "local":
        if emb.model.lower() not in LOCAL_MODELS:
            raise ConfigError(f"embedding.model '{emb.model}' is not the bundled local model",
                              "use all-minilm-l6-v2, or set embedding.provider to a server")
        return LocalEmbedder(threads=emb.threads, batch_size=emb.batch_size)
    provider = settings.providers.get(emb.provider)
    if provider is None:
        raise ConfigError(f"embedding.provider '{emb.provider}' is not defined under 'providers'",
                          "use 'local' for the bundled model or add the provider")
    if provider.kind != "openai":
        raise ConfigError(f"provider '{emb.provider}' (kind {provider.kind}) cannot embed text",
                          "point embedding.provider at an OpenAI-compatible server")
    return OpenAIEmbedder(emb.provider, provider, emb.model, batch_size=emb.batch_size)


def ensure_unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to length 1 (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ProviderError(f"expected a matrix of vectors, got shape {vectors.shape}")
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)
