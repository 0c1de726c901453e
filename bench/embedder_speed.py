"""Throughput of the bare local embedder on real chunks.

Samples chunks (chunk_tokens 200, overlap 30) from the shared docs corpus, then embeds them
with the blocking model runner, no event loop, twice: one call for all texts (batches of
similar length, as ingestion does) and one call per batch in corpus order (the padding
waste that sorting avoids). Prints texts/s, tokens/s and the peak RSS, and for scale the
speed of loading and chunking the sampled files.

    .venv/bin/python bench/embedder_speed.py [--n 512] [--batch-size 16] [--threads 0]
"""

from __future__ import annotations

import argparse
import random
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from engine.errors import IngestError  # noqa: E402
from engine.ingest.chunking import chunk_document  # noqa: E402
from engine.ingest.loaders import detect_kind, load_document  # noqa: E402
from engine.providers.local_embedder import MiniLM, available_cpus  # noqa: E402

CORPUS = ROOT.parent / "shared" / "bench-data" / "docs-corpus"


def sample_chunks(n: int, seed: int) -> list[str]:
    """``n`` chunk texts from random corpus files (all kinds), reproducible by seed."""
    rng = random.Random(seed)
    files = sorted(p for p in CORPUS.rglob("*") if p.is_file() and detect_kind(p))
    rng.shuffle(files)
    texts: list[str] = []
    chars = 0
    load_s = chunk_s = 0.0
    for path in files:
        started = time.perf_counter()
        try:
            doc = load_document(path, max_bytes=50 * 2**20)
        except IngestError:
            continue
        loaded = time.perf_counter()
        chunks = chunk_document(doc, max_tokens=200, overlap_tokens=30)
        chunk_s += time.perf_counter() - loaded
        load_s += loaded - started
        chars += len(doc.text)
        texts.extend(c.text for c in rng.sample(chunks, min(len(chunks), 3)))
        if len(texts) >= n:
            break
    print(f"loading {chars / load_s / 1e6:.1f} MB/s, chunking {chars / chunk_s / 1e6:.1f} MB/s "
          f"of text ({chars / 1e6:.1f} MB in sampled files, first call loads the tokenizer)")
    return texts[:n]


def run(model: MiniLM, texts: list[str], sort: bool) -> tuple[float, float, int]:
    """(wall seconds, CPU seconds of all threads, tokens read)."""
    start, cpu = time.perf_counter(), time.process_time()
    if sort:
        _, tokens = model.encode(texts)
    else:
        tokens = 0
        for first in range(0, len(texts), model.batch_size):
            tokens += model.encode(texts[first:first + model.batch_size])[1]
    return time.perf_counter() - start, time.process_time() - cpu, tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=512, help="chunks to embed")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0, help="0: all available cores")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    texts = sample_chunks(args.n, args.seed)
    model = MiniLM(threads=args.threads, batch_size=args.batch_size)
    start = time.perf_counter()
    model.encode(texts[:2])  # load and warm up
    print(f"model ready in {time.perf_counter() - start:.2f} s "
          f"(threads {model.threads} of {available_cpus()} cpus, batch {model.batch_size})")
    print(f"{len(texts)} chunks, {sum(map(len, texts)) / len(texts):.0f} chars on average")
    for label, sort in (("sorted by length", True), ("corpus order", False)):
        seconds, cpu, tokens = run(model, texts, sort)
        # CPU time too: on a busy machine the wall clock mostly measures the neighbours
        print(f"{label:>17}: {len(texts) / seconds:6.1f} texts/s  {tokens / seconds:7.0f} tokens/s"
              f"  ({seconds:.1f} s, {tokens / len(texts):.0f} tokens per text, "
              f"{len(texts) / cpu:.1f} texts per CPU second)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
