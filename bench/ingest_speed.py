"""Ingestion speed: the whole pipeline against the bare embedder on the same chunks.

Ingests the docs corpus (``../shared/bench-data/docs-corpus``, 9,751 files) into a fresh
PARLEY_HOME (SQLite by default; ``--db URL`` for an empty PostgreSQL database,
``--postgres`` for a throwaway embedded one) and prints wall time, files/s, chunks/s and
peak memory. Then it embeds the very chunk texts the run stored, with the same embedder in
calls of the same size, and prints that time and the ratio: what the pipeline (walking,
hashing, parsing, chunking, writing) adds on top of the embedding itself. The model is
loaded before either timing starts. A second, unchanged run shows the skip path.

    .venv/bin/python bench/ingest_speed.py [--limit N] [--db URL | --postgres]

``--limit N`` takes N files spread evenly over the corpus (every k-th file of the sorted
list), so a quick run sees every kind of document.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_support import postgres_url  # noqa: E402

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "bench-data" / "docs-corpus"


def pick_files(corpus: Path, limit: int | None) -> tuple[list[str], int]:
    """(what to ingest, how many files): the corpus folder itself, or ``limit`` of its
    files spread evenly."""
    from engine.ingest.walker import discover

    files = [str(p) for p in discover([corpus]).files]
    if limit is None or limit >= len(files):
        return [str(corpus)], len(files)
    step = len(files) / limit
    return [files[int(i * step)] for i in range(limit)], limit


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def run(args: argparse.Namespace) -> None:
    files, count = pick_files(args.corpus, args.limit)
    home = Path(tempfile.mkdtemp(prefix="parley-bench-ingest-"))
    os.environ["PARLEY_HOME"] = str(home)
    try:
        await measure(args, files, count, home)
    finally:
        shutil.rmtree(home, ignore_errors=True)


async def measure(args: argparse.Namespace, files: list[str], count: int,
                  home: Path) -> None:
    from sqlalchemy import select

    from engine import Engine, load_settings
    from engine.db import models as m
    from engine.ingest.pipeline import EMBED_CALL

    async with postgres_url(args.db, args.postgres) as url:
        settings = load_settings(overrides={"database": {"url": url or
                                                         f"sqlite:///{home / 'parley.db'}"}})
        async with Engine(settings, migrate=False) as admin:
            await admin.upgrade()
        async with Engine(settings) as engine:
            embedder = engine.embedder()
            await embedder.embed(["warm up the model before timing"])
            backend = engine.db.backend if engine.db else "?"
            print(f"backend {backend}, embedder {embedder.name}, {count} files "
                  f"from {args.corpus}", flush=True)

            print(f"load average before: {os.getloadavg()[0]:.1f}", flush=True)
            started, cpu = time.perf_counter(), time.process_time()
            result = await engine.library.ingest(files, collection="bench")
            wall, cpu = time.perf_counter() - started, time.process_time() - cpu
            rss = peak_rss_mb()
            print(f"ingest:  {wall:8.1f} s wall, {cpu:.1f} s CPU | {result.indexed} indexed, "
                  f"{result.failed} failed, {result.chunks} chunks | "
                  f"{count / wall:.1f} files/s, {result.chunks / wall:.1f} chunks/s | "
                  f"peak RSS {rss:.0f} MB", flush=True)

            started = time.perf_counter()
            again = await engine.library.ingest(files, collection="bench")
            print(f"re-run:  {time.perf_counter() - started:8.2f} s  {again.skipped} unchanged "
                  "files skipped (hashed, not parsed or embedded)", flush=True)

            assert engine.db is not None
            async with engine.db.read() as s:
                texts = list((await s.scalars(select(m.Chunk.text).order_by(m.Chunk.id))).all())
            step = max(1, round(1 / args.bare_sample))
            sample = [texts[i:i + EMBED_CALL] for i in range(0, len(texts), EMBED_CALL)][::step]
            started, bare_cpu = time.perf_counter(), time.process_time()
            for batch in sample:
                await embedder.embed(batch)
            # scaled from every step-th call of the same chunk list when sampling
            scale = len(texts) / max(sum(len(b) for b in sample), 1)
            bare = (time.perf_counter() - started) * scale
            bare_cpu = (time.process_time() - bare_cpu) * scale
            print(f"bare embedder on the same {len(texts)} chunks"
                  + (f" (1 call in {step}, scaled)" if step > 1 else "")
                  + f": {bare:.1f} s wall, {bare_cpu:.1f} s CPU ({len(texts) / bare:.1f} chunks/s)")
            print(f"pipeline / bare embedder: {wall / bare:.2f}x wall, {cpu / bare_cpu:.2f}x CPU "
                  f"(target <= 1.2x; load average now {os.getloadavg()[0]:.1f}: other "
                  "processes on the machine inflate wall times, CPU times much less)")
            for path, reason in result.errors[:args.show_errors]:
                print(f"  failed: {path}: {reason}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", type=Path, default=CORPUS)
    parser.add_argument("--limit", type=int, help="ingest only N files, spread over the corpus")
    parser.add_argument("--db", help="an empty database URL (default: SQLite in a temp dir)")
    parser.add_argument("--postgres", action="store_true",
                        help="start a throwaway embedded PostgreSQL for the run")
    parser.add_argument("--bare-sample", type=float, default=1.0, metavar="F",
                        help="time the bare embedder on this fraction of the chunks (e.g. 0.1 "
                             "for the full corpus) and scale")
    parser.add_argument("--show-errors", type=int, default=20, metavar="N")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
