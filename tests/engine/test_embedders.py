"""Embedders: the bundled offline model, and an OpenAI-compatible server over real HTTP."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import numpy as np
import pytest

from engine.config import ProviderSettings, Settings
from engine.errors import (
    ConfigError,
    ContextTooLong,
    ProviderAuthError,
    ProviderError,
    ProviderUnreachable,
    UnknownModel,
)
from engine.providers.embedders import (
    Embedder,
    LocalEmbedder,
    OpenAIEmbedder,
    count_tokens,
    make_embedder,
)

# -- the local model -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def local() -> LocalEmbedder:
    # one model for the module: it runs in worker threads, so any event loop can use it
    return LocalEmbedder(threads=2, batch_size=3)


def cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b)


async def test_local_vectors_are_unit_float32(local: LocalEmbedder) -> None:
    texts = ["The cat sat on the mat.", "Quarterly revenue grew by ten percent.", "", "x" * 3000]
    vectors = await local.embed_documents(texts)
    assert vectors.shape == (4, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    protocol: Embedder = local  # the type checker holds it to the protocol
    assert (protocol.name, protocol.dimension, protocol.max_tokens) == (
        "local/all-minilm-l6-v2", 384, 256)


async def test_local_paraphrase_is_closer_than_unrelated(local: LocalEmbedder) -> None:
    a, b, c = await local.embed_documents([
        "How do I reset my password?",
        "I forgot my password and need to change it.",
        "The volcano erupted at dawn, covering the village in ash.",
    ])
    assert cos(a, b) > 0.6 > 0.2 > cos(a, c)


async def test_local_query_matches_document(local: LocalEmbedder) -> None:
    text = "Parley keeps chat history encrypted at rest."
    query = await local.embed_query(text)
    document = (await local.embed_documents([text]))[0]
    assert query.shape == (384,) and query.dtype == np.float32
    assert cos(query, document) > 0.9999


async def test_local_order_is_preserved(local: LocalEmbedder) -> None:
    # lengths deliberately unsorted, more texts than one batch (batch_size 3)
    texts = [f"{'long ' * (n * 7 % 40)}sentence number {n} about topic {n % 3}" for n in range(10)]
    together = await local.embed_documents(texts)
    alone = np.stack([await local.embed_query(t) for t in texts])
    assert np.allclose(together, alone, atol=1e-4)
    reversed_ = await local.embed_documents(texts[::-1])
    assert np.allclose(reversed_[::-1], together, atol=1e-4)


async def test_local_usage_and_empty_input(local: LocalEmbedder) -> None:
    result = await local.embed(["hello world", "hello"])
    assert result.prompt_tokens == (2 + 2) + (1 + 2) and not result.estimated  # + [CLS] [SEP]
    long = await local.embed(["word " * 1000])
    assert long.prompt_tokens == 256  # truncated to the model's window
    empty = await local.embed([])
    assert empty.vectors.shape == (0, 384) and empty.prompt_tokens == 0


async def test_local_concurrent_calls(local: LocalEmbedder) -> None:
    texts = [f"text {i} of the concurrent test" for i in range(6)]
    results = await asyncio.gather(*(local.embed_documents([t]) for t in texts))
    expected = await local.embed_documents(texts)
    assert np.allclose(np.concatenate(results), expected, atol=1e-4)


async def test_local_close_and_reload() -> None:
    embedder = LocalEmbedder(threads=1)
    assert await embedder.probe() == 384 and not embedder.model.loaded  # no load for probe
    first = await embedder.embed_query("reload me")
    await embedder.aclose()
    assert not embedder.model.loaded
    assert np.allclose(await embedder.embed_query("reload me"), first, atol=1e-5)


def test_count_tokens() -> None:
    assert count_tokens("") == 0
    assert count_tokens("hello world") == 2
    assert count_tokens("Tokenization!") == 3  # token ##ization !
    assert count_tokens("word " * 1000) == 1000  # no truncation when counting


def test_make_embedder_local() -> None:
    embedder = make_embedder(Settings(embedding={"threads": 1, "batch_size": 8}))
    assert isinstance(embedder, LocalEmbedder)
    assert (embedder.model.threads, embedder.model.batch_size) == (1, 8)
    with pytest.raises(ConfigError, match="not the bundled local model"):
        make_embedder(Settings(embedding={"model": "bge-small"}))


def test_make_embedder_server() -> None:
    settings = Settings(
        embedding={"provider": "ollama", "model": "nomic-embed-text"},
        providers={"ollama": {"base_url": "http://127.0.0.1:11434/v1/"},
                   "quote": {"kind": "extractive"}})
    embedder = make_embedder(settings)
    assert isinstance(embedder, OpenAIEmbedder)
    assert embedder.name == "openai:ollama/nomic-embed-text"
    assert embedder.url == "http://127.0.0.1:11434/v1/embeddings"
    settings.embedding.provider = "quote"
    with pytest.raises(ConfigError, match="cannot embed"):
        make_embedder(settings)


# -- an OpenAI-compatible server -------------------------------------------------------------

DIM = 8


class FakeServer:
    """``POST /v1/embeddings`` as OpenAI answers it, with switches for the failure modes."""

    def __init__(self) -> None:
        self.api_key: str | None = None
        self.models = {"embed-small"}
        self.report_usage = True
        self.shuffle = True  # answer rows out of order: clients must use "index"
        self.fail: list[tuple[int, Any]] = []  # (status, body) answered before normal replies
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                server.requests.append(body)
                server.headers.append({k.lower(): v for k, v in self.headers.items()})
                status, reply = server.answer(self.path, self.headers.get("Authorization"), body)
                data = reply if isinstance(reply, bytes) else json.dumps(reply).encode()
                self.send_response(status)
                if status == 429:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.base_url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,),
                                       daemon=True)

    def answer(self, path: str, auth: str | None, body: dict[str, Any]) -> tuple[int, Any]:
        if self.fail:
            return self.fail.pop(0)
        if path != "/v1/embeddings":
            return 404, b"404 page not found"
        if self.api_key and auth != f"Bearer {self.api_key}":
            return 401, {"error": {"message": "Incorrect API key provided.",
                                   "type": "invalid_request_error", "code": "invalid_api_key"}}
        if body["model"] not in self.models:
            return 404, {"error": {"message": f"The model `{body['model']}` does not exist",
                                   "code": "model_not_found"}}
        rows = [{"object": "embedding", "index": i, "embedding": vector_for(text)}
                for i, text in enumerate(body["input"])]
        if self.shuffle:
            rows.reverse()
        reply: dict[str, Any] = {"object": "list", "data": rows, "model": body["model"]}
        if self.report_usage:
            tokens = sum(len(t.split()) for t in body["input"])
            reply["usage"] = {"prompt_tokens": tokens, "total_tokens": tokens}
        return 200, reply


def vector_for(text: str) -> list[float]:
    """A deterministic vector that is not unit length (so normalisation shows)."""
    seed = sum(map(ord, text)) % 97
    return [float((seed + 3 * i) % 11 + 1) for i in range(DIM)]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    srv = FakeServer()
    srv.thread.start()
    yield srv
    srv.httpd.shutdown()
    srv.httpd.server_close()


def remote(url: str, **provider: Any) -> OpenAIEmbedder:
    settings = ProviderSettings(base_url=url, timeout=5, connect_timeout=2, max_retries=0,
                                **provider)
    return OpenAIEmbedder("srv", settings, "embed-small", batch_size=2)


async def test_openai_vectors_order_usage(server: FakeServer) -> None:
    embedder = remote(server.base_url)
    texts = ["alpha beta", "gamma", "delta epsilon zeta", "eta", "theta"]
    result = await embedder.embed(texts)
    assert result.vectors.shape == (5, DIM) and result.vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(result.vectors, axis=1), 1.0, atol=1e-6)
    for text, row in zip(texts, result.vectors, strict=True):
        expected = np.array(vector_for(text), dtype=np.float32)
        assert np.allclose(row, expected / np.linalg.norm(expected), atol=1e-6)
    assert result.prompt_tokens == 8 and not result.estimated  # words, as the server counts
    assert [r["input"] for r in server.requests] == [texts[0:2], texts[2:4], texts[4:5]]
    assert all(r["model"] == "embed-small" for r in server.requests)
    assert embedder.dimension == DIM and embedder.name == "openai:srv/embed-small"
    query = await embedder.embed_query("gamma")
    assert query.shape == (DIM,) and np.allclose(query, result.vectors[1])
    await embedder.aclose()


async def test_openai_dimension_needs_a_call(server: FakeServer) -> None:
    embedder = remote(server.base_url)
    with pytest.raises(ProviderError, match="not known yet"):
        _ = embedder.dimension
    assert await embedder.probe() == DIM
    assert len(server.requests) == 1
    assert await embedder.probe() == DIM and len(server.requests) == 1
    await embedder.aclose()


async def test_openai_usage_estimated_when_missing(server: FakeServer) -> None:
    server.report_usage = False
    embedder = remote(server.base_url)
    result = await embedder.embed(["12345678", "1234"])
    assert result.estimated and result.prompt_tokens == 3  # 4 characters a token
    await embedder.aclose()


async def test_openai_api_key(server: FakeServer, monkeypatch: pytest.MonkeyPatch) -> None:
    server.api_key = "sk-right"
    monkeypatch.setenv("TEST_EMBED_KEY", "sk-right")
    good = remote(server.base_url, api_key_env="TEST_EMBED_KEY")
    await good.embed_query("ok")
    assert server.headers[-1]["authorization"] == "Bearer sk-right"
    await good.aclose()
    direct = remote(server.base_url, api_key="sk-right")
    await direct.embed_query("ok")
    await direct.aclose()

    bad = remote(server.base_url, api_key="sk-wrong")
    with pytest.raises(ProviderAuthError, match="refused the API key \\(HTTP 401\\)") as info:
        await bad.embed_query("no")
    assert info.value.hint and "providers.srv.api_key" in info.value.hint
    await bad.aclose()

    monkeypatch.delenv("TEST_EMBED_KEY")
    unset = remote(server.base_url, api_key_env="TEST_EMBED_KEY")
    with pytest.raises(ProviderAuthError, match="TEST_EMBED_KEY is not set"):
        await unset.embed_query("no")


async def test_openai_unknown_model(server: FakeServer) -> None:
    embedder = remote(server.base_url)
    embedder.model = "missing-model"
    with pytest.raises(UnknownModel, match="'missing-model' not found .* does not exist"):
        await embedder.embed_query("x")
    wrong_path = remote(server.base_url.removesuffix("/v1"))
    with pytest.raises(UnknownModel, match="404") as info:
        await wrong_path.embed_query("x")
    assert info.value.hint and "/v1" in info.value.hint
    await embedder.aclose()
    await wrong_path.aclose()


async def test_openai_unreachable() -> None:
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    embedder = remote(url)
    with pytest.raises(ProviderUnreachable, match=f"cannot reach the embedding server at "
                                                  f"{url}/embeddings") as info:
        await embedder.embed(["x"])
    assert info.value.hint and "base_url" in info.value.hint


async def test_openai_server_errors(server: FakeServer) -> None:
    embedder = remote(server.base_url)
    server.fail = [(500, {"error": {"message": "boom"}})]
    with pytest.raises(ProviderError, match=r"failed \(HTTP 500\): boom"):
        await embedder.embed_query("x")
    server.fail = [(400, {"error": {"message": "maximum context length is 512 tokens"}})]
    with pytest.raises(ContextTooLong):
        await embedder.embed_query("x")
    server.fail = [(200, b"not json")]
    with pytest.raises(ProviderError, match="malformed embeddings response"):
        await embedder.embed_query("x")
    server.fail = [(200, {"data": [{"index": 0, "embedding": [1.0]}] * 2})]
    with pytest.raises(ProviderError, match="expected 1 vectors"):
        await embedder.embed_query("x")
    await embedder.aclose()


async def test_openai_retries_transient_failures(server: FakeServer) -> None:
    settings = ProviderSettings(base_url=server.base_url, max_retries=2)
    embedder = OpenAIEmbedder("srv", settings, "embed-small")
    server.fail = [(503, {"error": "loading model"}), (429, {"error": "slow down"})]
    vectors = await embedder.embed_documents(["a", "b"])
    assert vectors.shape == (2, DIM) and len(server.requests) == 3
    await embedder.aclose()


async def test_openai_against_the_project_test_server() -> None:
    from tests.support.openai_server import OpenAITestServer, embed_text

    with OpenAITestServer(api_key="sk-test") as srv:
        provider = ProviderSettings(base_url=srv.base_url, api_key="sk-test", max_retries=0)
        embedder = OpenAIEmbedder("test", provider, "test-model")
        result = await embedder.embed(["one two three", "four"])
        assert np.allclose(result.vectors[0], embed_text("one two three"), atol=1e-6)
        assert result.prompt_tokens == 4 and await embedder.probe() == len(embed_text("x"))
        await embedder.aclose()
