"""A real OpenAI-compatible HTTP server on 127.0.0.1, for tests and demos.

It runs its own asyncio loop in a background thread, so sync and async tests use it alike::

    from tests.support.openai_server import OpenAITestServer

    with OpenAITestServer(reply="Paris [1].") as srv:
        srv.base_url                          # "http://127.0.0.1:PORT/v1"
        srv.provider_config()                 # {"kind": "openai", "base_url": ...} for Settings
        ...                                   # call it with model "test-model"
        srv.chat_requests[-1].json            # what the client sent
        srv.chat_requests[-1].headers["authorization"]

The ``openai_server`` pytest fixture yields a default server; enable it with
``pytest_plugins = ["tests.support.openai_server"]`` in the top ``conftest.py`` (or import
the fixture). Every behaviour below is a constructor keyword *and* an attribute that can be
changed between requests (``srv.reply = ...``).

Endpoints: ``GET /v1/models``; ``POST /v1/chat/completions``, streamed (a role chunk,
content chunks of ``chunk_size`` characters, a chunk with ``finish_reason``, a usage chunk
when ``stream_options.include_usage``, then ``data: [DONE]``) or plain JSON;
``POST /v1/embeddings`` (``embed_text``: deterministic hashed bag-of-words unit vectors,
``dimensions`` and ``encoding_format: base64`` honoured; usage = words).

Behaviours: ``reply`` (a string, or a callable given the request JSON), ``usage``
((prompt, completion) to report; default: words + 4 per message, words of the reply),
``usage_in_last_chunk`` (llama.cpp style), ``chunk_size``, ``chunk_delay`` (seconds),
``finish_reason``, ``models`` (others get 404 ``model_not_found``), ``api_key`` (required
``Bearer`` key, else 401), ``context_limit`` (prompt words above it get 400
``context_length_exceeded``), ``fail_next`` (the next N model calls answer ``fail_status``,
500 by default, then it recovers), ``hangup_after`` (close the socket after N content chunks,
without ``[DONE]``), ``never_answer`` (read the request, send nothing).

Context windows, the way each server tells them (``style`` and ``context_window``):
``"llamacpp"`` answers ``GET /props`` with ``default_generation_settings.n_ctx``;
``"ollama"`` answers ``POST /api/show`` with ``model_info["llama.context_length"]`` (and
``parameters: "num_ctx N"`` when ``ollama_num_ctx`` is set); ``"vllm"`` adds
``max_model_len`` to each entry of ``GET /v1/models``; ``"openai"`` (the default) tells
nothing, like OpenAI itself. The other endpoints answer 404.

Tool calls: ``tool_calls`` (a list of calls, or a callable given the request JSON that
returns one; empty or None: answer with text as usual) makes a streamed response carry
those calls instead of the reply. A call is ``{"name", "arguments", "id"?}`` (arguments a
dict, or a string sent verbatim, e.g. invalid JSON). ``tool_style`` says how they stream:
``openai`` (id and name once, arguments in fragments, ``finish_reason: tool_calls``),
``ollama`` (each call whole in one chunk, index 0 for all, a separate finish chunk),
``llamacpp`` (fragments, two calls interleaved by index) or ``quirks`` (a text preamble,
the full name re-sent on every fragment, no ids, ``finish_reason: stop``).
``tool_preamble`` is text streamed before the calls. ``no_stream_tools`` answers a streamed
request with tools HTTP 500 "Cannot use tools with stream" (llama.cpp's server before it
streamed tool calls); unstreamed requests get the calls in ``message.tool_calls``.
``calls_script(rounds)`` builds a callable that answers round N of a turn (counted by the
assistant messages after the last user message) with ``rounds[N]``.

Every request is recorded (``RecordedRequest``: method, path, lower-cased headers, JSON,
status, and ``disconnected`` when the client left before the response was complete);
``wait_for(predicate)`` waits for the server thread to catch up.

Standalone (e.g. under tmux)::

    python -m tests.support.openai_server --port 8080 --reply "Hello [1]."

prints ``listening on http://127.0.0.1:8080/v1`` and serves until SIGINT/SIGTERM.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import json
import math
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

DEFAULT_REPLY = "Hello from the test server. Parley streams this answer in small pieces."
DEFAULT_MODELS = ("test-model", "test-embedding")
_REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 404: "Not Found",
            429: "Too Many Requests", 500: "Internal Server Error", 503: "Service Unavailable"}


@dataclass
class RecordedRequest:
    """One request as the server received it."""

    method: str
    path: str
    headers: dict[str, str]
    json: Any
    status: int | None = None
    disconnected: bool = False


def embed_text(text: str, dim: int = 32) -> list[float]:
    """The server's embedding of ``text``: hashed bag of words, unit length."""
    vector = [0.0] * dim
    for word in text.lower().split():
        digest = hashlib.sha1(word.encode()).digest()
        index = int.from_bytes(digest[:4], "little") % dim
        vector[index] += 1.0 if digest[4] & 1 else -1.0
    norm = math.sqrt(sum(v * v for v in vector))
    if not norm:
        return [1.0] + [0.0] * (dim - 1)
    return [v / norm for v in vector]


def _words(messages: Any) -> int:
    return sum(len(str(m.get("content", "")).split()) + 4 for m in messages or ())


def _error(message: str, kind: str, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": kind, "param": None, "code": code}}


class OpenAITestServer:
    """See the module docstring."""

    def __init__(self, *, reply: str | Callable[[dict[str, Any]], str] = DEFAULT_REPLY,
                 models: tuple[str, ...] | list[str] = DEFAULT_MODELS,
                 usage: tuple[int, int] | None = None, usage_in_last_chunk: bool = False,
                 chunk_size: int = 4, chunk_delay: float = 0.0, finish_reason: str = "stop",
                 api_key: str | None = None, context_limit: int | None = None,
                 fail_next: int = 0, fail_status: int = 500, hangup_after: int | None = None,
                 never_answer: bool = False, embedding_dim: int = 32,
                 style: str = "openai", context_window: int | None = None,
                 ollama_num_ctx: int | None = None,
                 tool_calls: Any = None, tool_style: str = "openai",
                 tool_preamble: str = "", no_stream_tools: bool = False,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        self.reply = reply
        self.models = list(models)
        self.usage = usage
        self.usage_in_last_chunk = usage_in_last_chunk
        self.chunk_size = chunk_size
        self.chunk_delay = chunk_delay
        self.finish_reason = finish_reason
        self.api_key = api_key
        self.context_limit = context_limit
        self.fail_next = fail_next
        self.fail_status = fail_status
        self.hangup_after = hangup_after
        self.never_answer = never_answer
        self.embedding_dim = embedding_dim
        self.style = style
        self.context_window = context_window
        self.ollama_num_ctx = ollama_num_ctx
        self.tool_calls = tool_calls
        self.tool_style = tool_style
        self.tool_preamble = tool_preamble
        self.no_stream_tools = no_stream_tools
        self.host, self.port = host, port
        self.requests: list[RecordedRequest] = []
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        """The API root to configure as ``base_url``."""
        return f"http://{self.host}:{self.port}/v1"

    def provider_config(self, **overrides: Any) -> dict[str, Any]:
        """A ``providers.<name>`` config entry pointing at this server."""
        config: dict[str, Any] = {"kind": "openai", "base_url": self.base_url}
        if self.api_key:
            config["api_key"] = self.api_key
        return {**config, **overrides}

    def start(self) -> OpenAITestServer:
        """Bind and serve in a background thread; returns once the port is open."""
        ready = threading.Event()
        failure: list[BaseException] = []
        # The loop is created and bound inside the thread: the caller may be running its own
        # loop (an async test), and one thread cannot drive two loops.
        self._thread = threading.Thread(target=self._serve, args=(ready, failure),
                                        name="openai-test-server", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread.join()
            self._thread = None
            raise failure[0]
        return self

    def _serve(self, ready: threading.Event, failure: list[BaseException]) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            server = loop.run_until_complete(
                asyncio.start_server(self._connection, self.host, self.port))
        except OSError as exc:  # port taken: report it to start()
            failure.append(exc)
            loop.close()
            ready.set()
            return
        self.port = server.sockets[0].getsockname()[1]
        self._loop = loop
        ready.set()
        loop.run_forever()
        server.close()
        tasks = asyncio.all_tasks(loop)
        for task in tasks:  # handlers parked in never_answer or a slow stream
            task.cancel()
        loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
        loop.close()

    def stop(self) -> None:
        """Stop serving and drop every open connection."""
        if self._loop and self._thread:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)
            self._loop = self._thread = None

    def __enter__(self) -> OpenAITestServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- assertions helpers -----------------------------------------------------------------
    @property
    def chat_requests(self) -> list[RecordedRequest]:
        """Requests to ``/v1/chat/completions``, oldest first."""
        return [r for r in self.requests if r.path.endswith("/chat/completions")]

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 5.0) -> None:
        """Wait until ``predicate()`` is true (the server runs in another thread)."""
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise AssertionError("the test server never reached the expected state")
            time.sleep(0.01)

    # -- HTTP ----------------------------------------------------------------------------------
    async def _connection(self, reader: asyncio.StreamReader,
                          writer: asyncio.StreamWriter) -> None:
        try:
            while await self._request(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError, ValueError):
            pass  # the client left, or sent something that is not HTTP
        except asyncio.CancelledError:
            # stop() cancels parked handlers; asyncio.start_server would log a cancelled
            # handler as an error, and nothing awaits this task anyway.
            pass
        finally:
            writer.close()

    async def _request(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Serve one request; False when the connection must close."""
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except asyncio.IncompleteReadError:
            return False
        lines = head.decode("latin-1").split("\r\n")
        method, target, _ = lines[0].split(" ", 2)
        headers = {k.strip().lower(): v.strip() for k, _, v in
                   (line.partition(":") for line in lines[1:] if line)}
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        try:
            payload = json.loads(body) if body else None
        except ValueError:
            payload = None
        record = RecordedRequest(method, target.split("?", 1)[0], headers, payload)
        self.requests.append(record)
        return await self._route(record, reader, writer)

    async def _send(self, writer: asyncio.StreamWriter, record: RecordedRequest, status: int,
                    payload: Any) -> bool:
        record.status = status
        body = json.dumps(payload).encode()
        writer.write(f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\n"
                     f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                     .encode() + body)
        await writer.drain()
        return record.headers.get("connection", "").lower() != "close"

    async def _route(self, record: RecordedRequest, reader: asyncio.StreamReader,
                     writer: asyncio.StreamWriter) -> bool:
        known = {("GET", "/v1/models"), ("POST", "/v1/chat/completions"),
                 ("POST", "/v1/embeddings")}
        if self.style == "llamacpp" and (record.method, record.path) == ("GET", "/props"):
            return await self._send(writer, record, 200, {
                "default_generation_settings": {"n_ctx": self.context_window},
                "total_slots": 1, "model_path": "models/test-model.gguf"})
        if self.style == "ollama" and (record.method, record.path) == ("POST", "/api/show"):
            asked = (record.json or {}).get("model") if isinstance(record.json, dict) else None
            if asked not in self.models:
                return await self._send(writer, record, 404,
                                        {"error": f"model '{asked}' not found"})
            return await self._send(writer, record, 200, {
                "parameters": f"num_ctx {self.ollama_num_ctx}" if self.ollama_num_ctx else "",
                "model_info": {"general.architecture": "llama",
                               "llama.context_length": self.context_window}})
        if (record.method, record.path) not in known:
            return await self._send(writer, record, 404, _error(
                f"no route {record.method} {record.path}", "invalid_request_error", None))
        if self.api_key and record.headers.get("authorization") != f"Bearer {self.api_key}":
            return await self._send(writer, record, 401, _error(
                "Incorrect API key provided.", "invalid_request_error", "invalid_api_key"))
        if record.method == "GET":
            extra = {"max_model_len": self.context_window} if self.style == "vllm" else {}
            return await self._send(writer, record, 200, {"object": "list", "data": [
                {"id": m, "object": "model", "created": 0, "owned_by": "tests", **extra}
                for m in self.models]})
        request = record.json if isinstance(record.json, dict) else {}
        model = request.get("model")
        if self.never_answer:
            await self._until_disconnect(reader, record)
            return False
        if self.fail_next > 0:
            self.fail_next -= 1
            return await self._send(writer, record, self.fail_status, _error(
                "The server had an error while processing your request.", "server_error", None))
        if model not in self.models:
            return await self._send(writer, record, 404, _error(
                f"The model `{model}` does not exist or you do not have access to it.",
                "invalid_request_error", "model_not_found"))
        if record.path == "/v1/embeddings":
            return await self._send(writer, record, 200, self._embeddings(request))
        prompt = _words(request.get("messages"))
        if self.context_limit is not None and prompt > self.context_limit:
            return await self._send(writer, record, 400, _error(
                f"This model's maximum context length is {self.context_limit} tokens. "
                f"However, your messages resulted in {prompt} tokens.",
                "invalid_request_error", "context_length_exceeded"))
        if self.no_stream_tools and request.get("tools") and request.get("stream"):
            return await self._send(writer, record, 500, _error(
                "Cannot use tools with stream", "server_error", None))
        calls = self.tool_calls(request) if callable(self.tool_calls) else self.tool_calls
        if calls:
            text = self.tool_preamble
        else:
            calls = None
            text = self.reply(request) if callable(self.reply) else self.reply
        usage = self.usage or (prompt, len(text.split()) + 10 * len(calls or ()))
        usage_json = {"prompt_tokens": usage[0], "completion_tokens": usage[1],
                      "total_tokens": usage[0] + usage[1]}
        if not request.get("stream"):
            message: dict[str, Any] = {"role": "assistant", "content": text}
            if calls:
                message["content"] = text or None
                message["tool_calls"] = [
                    {"id": str(c.get("id") or f"call_{i}"), "type": "function",
                     "function": {"name": c["name"], "arguments": _arguments(c)}}
                    for i, c in enumerate(calls)]
            return await self._send(writer, record, 200, {
                "id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
                "choices": [{"index": 0, "message": message,
                             "finish_reason": "tool_calls" if calls else self.finish_reason}],
                "usage": usage_json})
        await self._stream(request, text, usage_json, record, reader, writer, calls)
        return False

    async def _stream(self, request: dict[str, Any], text: str, usage: dict[str, int],
                      record: RecordedRequest, reader: asyncio.StreamReader,
                      writer: asyncio.StreamWriter, calls: list[dict[str, Any]] | None = None,
                      ) -> None:
        # A streamed response closes its connection afterwards, so a pending read on the
        # socket can only mean one thing: the client went away.
        watcher = asyncio.ensure_future(reader.read(1))
        record.status = 200
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                     b"Cache-Control: no-cache\r\nConnection: close\r\n"
                     b"Transfer-Encoding: chunked\r\n\r\n")
        include_usage = bool((request.get("stream_options") or {}).get("include_usage"))
        base = {"id": "chatcmpl-test", "object": "chat.completion.chunk", "created": 0,
                "model": request.get("model")}

        def chunk(delta: dict[str, Any], finish: str | None = None, **extra: Any) -> bytes:
            data = {**base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
                    **extra}
            return f"data: {json.dumps(data)}\n\n".encode()

        pieces = [text[i:i + self.chunk_size] for i in range(0, len(text), self.chunk_size)]
        events = [chunk({"role": "assistant", "content": ""})]
        events += [chunk({"content": piece}) for piece in pieces]
        last_usage = {"usage": usage} if include_usage and self.usage_in_last_chunk else {}
        finish = self.finish_reason
        if calls:
            deltas, finish = tool_call_deltas(calls, self.tool_style)
            events += [chunk(delta) for delta in deltas]
        events.append(chunk({}, finish, **last_usage))
        if include_usage and not self.usage_in_last_chunk:
            events.append(f"data: {json.dumps({**base, 'choices': [], 'usage': usage})}\n\n"
                          .encode())
        events.append(b"data: [DONE]\n\n")
        try:
            for number, event in enumerate(events):
                if self.hangup_after is not None and number > self.hangup_after:
                    return  # the socket closes without the final chunk or [DONE]
                writer.write(b"%x\r\n%s\r\n" % (len(event), event))
                await writer.drain()
                if self.chunk_delay and 0 < number <= len(pieces):
                    await asyncio.wait({watcher}, timeout=self.chunk_delay)
                if watcher.done():
                    record.disconnected = True
                    return
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        except ConnectionError:
            record.disconnected = True
        finally:
            watcher.cancel()

    async def _until_disconnect(self, reader: asyncio.StreamReader,
                                record: RecordedRequest) -> None:
        await reader.read(1)
        record.disconnected = True

    def _embeddings(self, request: dict[str, Any]) -> dict[str, Any]:
        inputs = request.get("input")
        texts = [inputs] if isinstance(inputs, str) else [str(t) for t in inputs or ()]
        dim = int(request.get("dimensions") or self.embedding_dim)
        data = []
        for index, text in enumerate(texts):
            vector: Any = embed_text(text, dim)
            if request.get("encoding_format") == "base64":
                vector = base64.b64encode(struct.pack(f"<{dim}f", *vector)).decode()
            data.append({"object": "embedding", "index": index, "embedding": vector})
        tokens = sum(len(t.split()) for t in texts)
        return {"object": "list", "data": data, "model": request.get("model"),
                "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


def _arguments(call: dict[str, Any]) -> str:
    arguments = call.get("arguments", {})
    return arguments if isinstance(arguments, str) else json.dumps(arguments)


def _fragments(text: str, size: int = 5) -> list[str]:
    return [text[i:i + size] for i in range(0, len(text), size)] or [""]


def tool_call_deltas(calls: list[dict[str, Any]], style: str) -> tuple[list[dict[str, Any]], str]:
    """The deltas that stream ``calls`` in ``style`` (see the module docstring), and the
    finish reason that style ends with."""
    ids = [str(call.get("id") or f"call_{i}") for i, call in enumerate(calls)]
    if style == "ollama":
        return [{"tool_calls": [{"index": 0, "id": ids[i], "type": "function", "function": {
            "name": call["name"], "arguments": _arguments(call)}}]}
            for i, call in enumerate(calls)], "tool_calls"
    if style == "quirks":
        deltas = []
        for i, call in enumerate(calls):
            for n, piece in enumerate(_fragments(_arguments(call))):
                entry: dict[str, Any] = {"index": i, "function": {"name": call["name"],
                                                                  "arguments": piece}}
                if n == 0:
                    entry["id"] = ""  # an empty id: the client must make one up
                deltas.append({"tool_calls": [entry]})
        return deltas, "stop"
    firsts = [{"tool_calls": [{"index": i, "id": ids[i], "type": "function",
                               "function": {"name": call["name"], "arguments": ""}}]}
              for i, call in enumerate(calls)]
    pieces = [[{"tool_calls": [{"index": i, "function": {"arguments": piece}}]}
               for piece in _fragments(_arguments(call))] for i, call in enumerate(calls)]
    if style == "llamacpp":  # every call opened, then their fragments interleaved
        deltas = list(firsts)
        longest = max(len(p) for p in pieces)
        for n in range(longest):
            deltas += [p[n] for p in pieces if n < len(p)]
        return deltas, "tool_calls"
    deltas = []
    for first, rest in zip(firsts, pieces, strict=True):
        deltas += [first, *rest]
    return deltas, "tool_calls"


def tool_round(request: dict[str, Any]) -> int:
    """Which round of a turn a request is: 0, plus one per ``tool`` message after the last
    user message."""
    messages = request.get("messages") or []
    last_user = max((i for i, m in enumerate(messages) if m.get("role") == "user"), default=-1)
    return sum(1 for m in messages[last_user + 1:] if m.get("role") == "assistant")


def calls_script(rounds: list[list[dict[str, Any]]]) -> Callable[[dict[str, Any]], Any]:
    """A ``tool_calls`` callable answering round N of a turn with ``rounds[N]`` (text once
    the rounds run out)."""
    def script(request: dict[str, Any]) -> Any:
        n = tool_round(request)
        return rounds[n] if n < len(rounds) else None
    return script


@pytest.fixture
def openai_server() -> Iterator[OpenAITestServer]:
    """A running ``OpenAITestServer`` with default behaviour; change its attributes freely."""
    with OpenAITestServer() as server:
        yield server


def main(argv: list[str] | None = None) -> None:
    """Serve until SIGINT or SIGTERM (see the module docstring)."""
    parser = argparse.ArgumentParser(description="OpenAI-compatible test server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0, help="0 picks a free port")
    parser.add_argument("--port-file", type=Path, help="write the chosen port here")
    parser.add_argument("--reply", default=DEFAULT_REPLY)
    parser.add_argument("--model", action="append", help="served model (repeatable)")
    parser.add_argument("--api-key")
    parser.add_argument("--chunk-size", type=int, default=4)
    parser.add_argument("--chunk-delay", type=float, default=0.0)
    parser.add_argument("--style", default="openai",
                        choices=["openai", "llamacpp", "ollama", "vllm"])
    parser.add_argument("--context-window", type=int)
    parser.add_argument("--tool-rounds", metavar="JSON",
                        help="tool calls per round of a turn: a JSON list of lists of calls")
    parser.add_argument("--tool-style", default="openai")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    server = OpenAITestServer(reply=args.reply, models=args.model or DEFAULT_MODELS,
                              api_key=args.api_key, chunk_size=args.chunk_size,
                              chunk_delay=args.chunk_delay, style=args.style,
                              context_window=args.context_window, host=args.host,
                              port=args.port,
                              tool_calls=calls_script(json.loads(args.tool_rounds))
                              if args.tool_rounds else None, tool_style=args.tool_style)
    with server:
        if args.port_file:
            args.port_file.write_text(str(server.port))
        print(f"listening on {server.base_url}", flush=True)
        while not stop.wait(0.2):
            pass


if __name__ == "__main__":
    main()
