"""Library sync figures: watch latency, citation drift cost, duplicate-aware ingestion.

- ``watch``: a folder under ``parley watch`` (FolderSync, the default debounce), 100 edits
  one after another; each edit's time until the new word is in the index (p50/p95);
- ``drift``: opening a 2,000-message session whose answers hold 500 citations, with the
  drift check and without it (median of runs), once with every source unchanged and once
  with every cited file edited (re-anchoring by text);
- ``dupes``: ingesting N text files of the shared corpus, then the same N with 30 % of
  them copies of others (time and embedded texts);
- ``--threshold``: fuzzy-match scores of edited vs rewritten passages (how FUZZY_THRESHOLD
  was chosen).

Run: ``.venv/bin/python bench/library_sync.py [--part watch|drift|dupes|threshold]``
(SQLite file in a temporary home; the bundled embedder).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "bench-data" / "docs-corpus"


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _engine(home: Path):  # type: ignore[no-untyped-def]
    os.environ["PARLEY_HOME"] = str(home)
    from engine import Engine, load_settings

    return Engine(load_settings())


async def bench_watch(edits: int) -> None:
    from sqlalchemy import func, select

    from engine.db import models as m

    home = Path(tempfile.mkdtemp())
    folder = home / "notes"
    folder.mkdir()
    for i in range(20):
        (folder / f"n{i}.md").write_text(f"# Note {i}\n\nSome text about topic {i}.\n")
    async with await _engine(home) as engine:
        await engine.watched.add(folder)
        sync = engine.folder_sync()
        stop = asyncio.Event()
        task = asyncio.create_task(sync.run(stop))
        while not (await engine.library.documents()):
            await asyncio.sleep(0.05)
        await asyncio.sleep(1.0)
        latencies = []
        for n in range(edits):
            word = f"zq{n}x{random.randrange(10**6)}"
            started = time.perf_counter()
            (folder / f"n{n % 20}.md").write_text(f"# Note\n\nThe word {word} is new.\n")
            while True:
                async with engine.db.read() as s:  # type: ignore[union-attr]
                    found = await s.scalar(select(func.count()).select_from(m.Chunk).where(
                        m.Chunk.text.contains(word)))
                if found:
                    break
                await asyncio.sleep(0.01)
            latencies.append((time.perf_counter() - started) * 1000)
        stop.set()
        await task
    print(f"watch: change-to-searchable over {edits} edits (debounce "
          f"{sync.debounce_ms} ms): p50 {pct(latencies, 0.5):.0f} ms, "
          f"p95 {pct(latencies, 0.95):.0f} ms, max {max(latencies):.0f} ms")
    shutil.rmtree(home, ignore_errors=True)


async def bench_drift(runs: int) -> None:
    from engine.chat.turn import _live  # noqa: F401  (the write path stores hashes)
    from engine.db import models as m
    from engine.drift import check as drift_check
    from engine.history import sessions as sessions_mod

    home = Path(tempfile.mkdtemp())
    docs = home / "docs"
    docs.mkdir()
    for i in range(50):
        (docs / f"d{i}.md").write_text("\n\n".join(
            f"Paragraph {j} of document {i}: " + " ".join(f"w{(i * j + k) % 97}"
                                                            for k in range(40))
            for j in range(12)))
    async with await _engine(home) as engine:
        await engine.library.ingest([docs])
        hits = await engine.retrieval.search("paragraph document", k=50)
        session = await engine.sessions.create("big")
        async with engine.db.write() as s:  # type: ignore[union-attr]
            parent = None
            for i in range(2000):
                row = m.Message(user_id=engine.user_id, session_id=session.id,
                                parent_id=parent, role="user" if i % 2 == 0 else "assistant",
                                content=f"message {i} " * 20)
                s.add(row)
                await s.flush()
                parent = row.id
                if i % 2 == 1 and i < 1000:  # 500 answers, one citation each
                    h = hits[i % len(hits)]
                    chunk = await s.get(m.Chunk, h.chunk_id)
                    s.add(m.Citation(user_id=engine.user_id, message_id=row.id,
                                     chunk_id=h.chunk_id, document_id=h.document_id,
                                     marker=1, path=h.path, page=h.page,
                                     line_start=h.line_start, line_end=h.line_end,
                                     score=h.score, snippet=h.text,
                                     chunk_hash=chunk.content_hash if chunk else None))
            sess = await s.get(m.Session, session.id)
            sess.current_message_id = parent  # type: ignore[union-attr]

        async def timed() -> float:
            times = []
            for _ in range(runs):
                started = time.perf_counter()
                await engine.sessions.get(session.id)
                times.append((time.perf_counter() - started) * 1000)
            return statistics.median(times)

        with_check = await timed()
        from sqlalchemy import select

        async with engine.db.read() as s:  # type: ignore[union-attr]
            rows = list(await s.scalars(select(m.Citation)))
            direct = []
            for _ in range(runs):
                started = time.perf_counter()
                await drift_check.check_citations(s, engine.user_id, rows)
                direct.append((time.perf_counter() - started) * 1000)
        real = drift_check.check_citations

        async def nothing(*_a, **_k):  # type: ignore[no-untyped-def]
            return {}

        sessions_mod.check_citations = nothing  # type: ignore[assignment]
        without = await timed()
        sessions_mod.check_citations = real  # type: ignore[assignment]
        # every cited file edited (a line added on top): every citation is re-anchored
        for path in {h.path for h in hits}:
            p = Path(path)
            p.write_text("A new first line.\n\n" + p.read_text())
        await engine.library.ingest([docs])
        moved = await timed()
        detail = await engine.sessions.get(session.id)
        states = [c.drift.state for msg in detail.messages for c in msg.citations if c.drift]
    print(f"drift: the check alone on {len(states)} unchanged citations: "
          f"{statistics.median(direct):.1f} ms (median of {runs})")
    print(f"drift: open a 2,000-message session with {len(states)} citations: "
          f"{without:.1f} ms without the check, {with_check:.1f} ms with it "
          f"(+{with_check - without:.1f} ms, sources unchanged); {moved:.1f} ms when every "
          f"cited file changed ({states.count('moved')} moved, "
          f"{states.count('changed')} changed)")
    shutil.rmtree(home, ignore_errors=True)


async def bench_dupes(files: int) -> None:
    pool = sorted(p for p in (CORPUS / "tldr").rglob("*.md"))[:files]
    for label, share in (("no duplicates", 0.0), ("30 % duplicates", 0.3)):
        home = Path(tempfile.mkdtemp())
        docs = home / "docs"
        docs.mkdir()
        originals = pool[: int(files * (1 - share))]
        for i, p in enumerate(originals):
            shutil.copy(p, docs / f"f{i}.md")
        rng = random.Random(7)
        for i in range(files - len(originals)):
            shutil.copy(rng.choice(originals), docs / f"copy{i}.md")
        async with await _engine(home) as engine:
            embedder = engine.embedder()
            texts = [0]
            real = embedder.embed

            async def counting(batch, _real=real, _texts=texts):  # type: ignore[no-untyped-def]
                _texts[0] += len(batch)
                return await _real(batch)

            embedder.embed = counting  # type: ignore[method-assign]
            await embedder.probe()
            started = time.perf_counter()
            result = await engine.library.ingest([docs])
            seconds = time.perf_counter() - started
        print(f"dupes: {files} files, {label}: {seconds:.1f} s, {texts[0]:,} texts embedded, "
              f"{result.linked} stored once as copies")
        shutil.rmtree(home, ignore_errors=True)


def bench_threshold() -> None:
    from rapidfuzz import fuzz

    rng = random.Random(3)
    words = [f"w{i}" for i in range(400)] + "the a of to in keeper storm log harbour".split()
    scores: dict[str, list[float]] = {"small edit": [], "rewritten": [], "unrelated": []}
    for _ in range(200):
        passage = " ".join(rng.choice(words) for _ in range(120))
        doc = " ".join(rng.choice(words) for _ in range(600))
        tokens = passage.split()
        edited = tokens.copy()
        for _ in range(2):
            edited[rng.randrange(len(edited))] = rng.choice(words)
        rewritten = tokens.copy()
        for i in rng.sample(range(len(rewritten)), len(rewritten) // 2):
            rewritten[i] = rng.choice(words)
        for label, body in (("small edit", edited), ("rewritten", rewritten)):
            text = doc[:1500] + " " + " ".join(body) + " " + doc[1500:]
            scores[label].append(fuzz.partial_ratio(passage, text))
        scores["unrelated"].append(fuzz.partial_ratio(passage, doc))
    for label, values in scores.items():
        print(f"threshold: {label:10}: min {min(values):.1f}, median "
              f"{statistics.median(values):.1f}, max {max(values):.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["watch", "drift", "dupes", "threshold", "all"],
                        default="all")
    parser.add_argument("--edits", type=int, default=100)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--files", type=int, default=400)
    args = parser.parse_args()
    if args.part in ("threshold", "all"):
        bench_threshold()
    if args.part in ("drift", "all"):
        asyncio.run(bench_drift(args.runs))
    if args.part in ("dupes", "all"):
        asyncio.run(bench_dupes(args.files))
    if args.part in ("watch", "all"):
        asyncio.run(bench_watch(args.edits))


if __name__ == "__main__":
    main()
