"""Chat latency: what Parley adds around the model.

1. Streaming: the time from the server writing its first token to Parley's first byte on
   stdout. ``parley ask`` runs as a subprocess against the OpenAI-compatible test server
   (in this process, in its own thread, with a delay between chunks); the server stamps
   the moment it writes the first content chunk, a reader thread stamps the first byte on
   the subprocess's stdout. Both clocks are the system's monotonic clock.
2. Overhead before the model is called, at 100k chunks: a collection of 100k synthetic
   chunks (random text over a Zipf vocabulary, random unit vectors of the bundled
   embedder's 384 dimensions) is written straight through the ORM; then the time from
   ``chat.ask`` to the provider being called (store the question, retrieve with the real
   query embedding, keyword and vector search, build the prompt, check the budget), with
   retrieval and prompt building also timed alone.

Run: ``.venv/bin/python bench/chat_latency.py [--runs 10] [--chunks 100000]
[--backend sqlite|postgres|both] [--only stream|overhead]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_support import postgres_url  # noqa: E402
from tests.support.openai_server import OpenAITestServer  # noqa: E402

QUESTIONS = ["how do I rotate the encryption key", "what does the backup command copy",
             "which port does the server listen on", "why is the index slow after an upgrade",
             "where are the configuration files kept", "how are citations numbered"]


def summary(values: Sequence[float]) -> str:
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(round(0.9 * (len(ordered) - 1))))]
    return (f"median {statistics.median(ordered):8.2f} ms   p90 {p90:8.2f} ms   "
            f"min {ordered[0]:8.2f} ms   (n={len(ordered)})")


# -- 1. first token to first byte -------------------------------------------------------------
class _StampingWriter:
    """The server's stream writer, stamping the first content chunk it writes."""

    def __init__(self, inner: Any, stamps: list[float]) -> None:
        self._inner, self._stamps, self._done = inner, stamps, False

    def write(self, data: bytes) -> None:
        self._inner.write(data)
        if not self._done and b'"content": "' in data and b'"content": ""' not in data:
            self._done = True
            self._stamps.append(time.monotonic())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)


class StampingServer(OpenAITestServer):
    """The test server, recording when each stream's first token was written."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.first_tokens: list[float] = []

    async def _stream(self, request: Any, text: str, usage: Any, record: Any, reader: Any,
                      writer: Any) -> None:
        await super()._stream(request, text, usage, record, reader,
                              _StampingWriter(writer, self.first_tokens))


def _first_byte(stream: Any, out: list[float]) -> None:
    if os.read(stream.fileno(), 1):
        out.append(time.monotonic())
    while os.read(stream.fileno(), 65536):
        pass


def bench_stream(runs: int) -> None:
    home = Path(tempfile.mkdtemp(prefix="parley-bench-ask-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env["PARLEY_HOME"] = str(home)
    cli = [sys.executable, "-m", "tui.cli"]
    subprocess.run([*cli, "db", "upgrade"], cwd=REPO, env=env, check=True,
                   capture_output=True)
    reply = "Parley streams every piece to the terminal as soon as it arrives. " * 4
    lags, startups = [], []
    with StampingServer(reply=reply, chunk_size=8, chunk_delay=0.02) as server:
        (home / "config.yaml").write_text(
            f"chat:\n  provider: test\n  model: test-model\nproviders:\n  test:\n"
            f"    kind: openai\n    base_url: {server.base_url}\n", encoding="utf-8")
        for run in range(runs + 1):  # the first run warms the file cache
            seen: list[float] = []
            started = time.monotonic()
            proc = subprocess.Popen([*cli, "ask", "--new", "--no-rag", "Say something"],
                                    cwd=REPO, env=env, stdout=subprocess.PIPE,
                                    stderr=subprocess.PIPE)
            reader = threading.Thread(target=_first_byte, args=(proc.stdout, seen))
            reader.start()
            proc.wait()  # not communicate(): it would read stdout too, racing the reader
            reader.join()
            assert proc.stderr is not None
            if proc.returncode != 0 or not seen:
                raise SystemExit(f"parley ask failed: {proc.stderr.read().decode()}")
            if run:
                token = server.first_tokens[-1]
                lags.append((seen[0] - token) * 1000)
                startups.append((token - started) * 1000)
    print("1. first token written by the server -> first byte on parley's stdout")
    print(f"   lag                          {summary(lags)}")
    print(f"   (process start -> first token {summary(startups)})")


# -- 2. overhead before the model call at 100k chunks -----------------------------------------
class _Probe:
    """A provider that only notes when it is called."""

    kind, is_local, name = "openai", True, "bench"

    def __init__(self) -> None:
        self.called: list[float] = []

    async def stream(self, messages: Any, *, model: str, temperature: float | None = None,
                     max_tokens: int | None = None, sources: Any = ()) -> AsyncIterator[Any]:
        from engine.providers.base import StreamEnd, TextDelta

        self.called.append(time.perf_counter())
        yield TextDelta("ok [1]")
        yield StreamEnd("stop")

    async def list_models(self) -> list[str]:
        return ["bench-model"]

    async def aclose(self) -> None:
        return None


async def build_collection(engine: Any, chunks: int, per_doc: int = 100) -> float:
    """Write ``chunks`` synthetic chunks with vectors; seconds taken."""
    from sqlalchemy import insert

    from engine.db import models as m
    from engine.db.search_backend import for_backend

    started = time.perf_counter()
    rng = np.random.default_rng(7)
    vocab = np.array([f"w{i}" for i in range(20_000)] +
                     "key backup port index config citation rotate server upgrade".split())
    weights = 1.0 / np.arange(1, len(vocab) + 1)
    weights /= weights.sum()
    embedder = engine.embedder()
    async with engine.db.write() as s:
        coll = m.Collection(user_id=engine.user_id, name="default", embedder=embedder.name,
                            dimension=embedder.dimension)
        s.add(coll)
        await s.flush()
        cid = coll.id
    backend = for_backend(engine.db.backend)
    # SQLite's vec0 tables fill through triggers as rows arrive (as ingestion does);
    # PostgreSQL builds an HNSW index far faster over rows already there.
    early = engine.db.backend == "sqlite"
    if early:
        async with engine.db.write() as s:
            await backend.create_vector_index(s, cid, 1, embedder.dimension)
    for first in range(0, chunks, per_doc * 50):
        docs = min(50, (chunks - first + per_doc - 1) // per_doc)
        async with engine.db.write() as s:
            set_ids = (await s.execute(insert(m.ChunkSet).returning(
                m.ChunkSet.id, sort_by_parameter_order=True), [{
                    "user_id": engine.user_id, "content_hash": f"{first // per_doc + d:064x}",
                    "suffix": ".md", "chunk_count": per_doc} for d in range(docs)]
            )).scalars().all()
            await s.execute(insert(m.Document), [{
                    "user_id": engine.user_id, "collection_id": cid,
                    "source_path": f"/bench/doc{first // per_doc + d}.md",
                    "path_hash": f"{first // per_doc + d:064x}", "chunk_count": per_doc,
                    "status": "indexed", "size": 0, "chunk_set_id": set_ids[d]}
                    for d in range(docs)])
            rows = []
            for doc_id in set_ids:
                for index in range(per_doc):
                    words = rng.choice(vocab, size=60, p=weights)
                    rows.append({"user_id": engine.user_id, "chunk_set_id": doc_id,
                                 "chunk_index": index,
                                 "text": " ".join(words), "content_hash": "x",
                                 "line_start": index * 5 + 1, "line_end": index * 5 + 5,
                                 "char_start": 0, "char_end": 300, "token_count": 60})
            ids = (await s.execute(insert(m.Chunk).returning(
                m.Chunk.id, sort_by_parameter_order=True), rows)).scalars().all()
            vectors = rng.standard_normal((len(ids), embedder.dimension)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            await s.execute(insert(m.ChunkEmbedding), [
                {"chunk_id": c, "generation": 1, "collection_id": cid, "embedding": v}
                for c, v in zip(ids, vectors, strict=True)])
        print(f"   ... {first + len(ids):,} chunks written", file=sys.stderr, flush=True)
    if not early:
        async with engine.db.write() as s:
            await backend.create_vector_index(s, cid, 1, embedder.dimension)
    return time.perf_counter() - started


async def bench_overhead(url: str, label: str, chunks: int, runs: int) -> None:
    from engine import Engine, load_settings
    from engine.config import ProviderSettings
    from engine.chat.prompt import DEFAULT_SYSTEM_PROMPT, build_prompt

    os.environ["PARLEY_HOME"] = tempfile.mkdtemp(prefix="parley-bench-chat-")
    settings = load_settings(overrides={"database": {"url": url}})
    settings.providers = {"bench": ProviderSettings(kind="openai",
                                                    base_url="http://127.0.0.1:9/v1")}
    settings.chat.provider, settings.chat.model = "bench", "bench-model"
    async with Engine(settings, migrate=False) as admin:
        await admin.upgrade()
    async with Engine(settings) as engine:
        took = await build_collection(engine, chunks)
        probe = _Probe()
        engine.chat.provider = lambda name: probe  # type: ignore[method-assign]
        await engine.retrieval.search("warm up the model", collections=["default"])
        retrieval, prompts, embeds, overhead = [], [], [], []
        for run in range(runs):
            question = QUESTIONS[run % len(QUESTIONS)] + f" {run}"
            t0 = time.perf_counter()
            await engine.embedder().embed_query(question)
            t1 = time.perf_counter()
            hits = await engine.retrieval.search(question, collections=["default"])
            t2 = time.perf_counter()
            build_prompt(system_prompt=DEFAULT_SYSTEM_PROMPT, question=question, hits=hits)
            t3 = time.perf_counter()
            embeds.append((t1 - t0) * 1000)
            retrieval.append((t2 - t1) * 1000)
            prompts.append((t3 - t2) * 1000)
            started = time.perf_counter()
            async for _ in engine.chat.ask(question, new=True):
                pass
            overhead.append((probe.called[-1] - started) * 1000)
    print(f"2. before the model call, {chunks:,} chunks on {label} "
          f"(collection built in {took:.0f} s)")
    print(f"   query embedding alone        {summary(embeds)}")
    print(f"   retrieval (hybrid, k=6)      {summary(retrieval)}")
    print(f"   prompt building              {summary(prompts)}")
    print(f"   ask() -> provider called     {summary(overhead)}")


async def main_async(args: argparse.Namespace) -> None:
    if args.only in (None, "stream"):
        bench_stream(args.runs)
    if args.only in (None, "overhead"):
        if args.backend in ("sqlite", "both"):
            folder = Path(tempfile.mkdtemp(prefix="parley-bench-db-"))
            await bench_overhead(f"sqlite:///{folder / 'bench.db'}", "SQLite", args.chunks,
                                 args.runs)
        if args.backend in ("postgres", "both"):
            async with postgres_url(None, True) as url:
                assert url is not None
                await bench_overhead(url, "PostgreSQL", args.chunks, args.runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--backend", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--only", choices=["stream", "overhead"])
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
