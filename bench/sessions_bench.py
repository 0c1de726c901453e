"""Encrypted history at scale: opening a long session and searching 100k messages.

Builds a history of ``--messages`` messages (default 100,000): one session of 2,000
messages and the rest in sessions of 200, written with bulk ORM inserts (so every value
goes through the encrypted column type, as in real use). Then times, as the median of
``--runs`` runs:

- ``sessions.get`` on the 2,000-message session (decrypt included);
- ``sessions.search`` for a word that occurs nowhere (the worst case: every value is
  decrypted and scanned) and for a common word (stops at the default limit of 50 hits).

The share spent in decryption is measured by timing every call of the cipher's
``decrypt`` during those runs (the rest is the database, the ORM and the matching).

Run: ``.venv/bin/python bench/sessions_bench.py [--messages 100000] [--runs 5]
[--backend sqlite|postgres]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_support import postgres_url  # noqa: E402

WORDS = ("the a of to and in model answer source page search index token vector keyword "
         "session history encrypted local server document question lisbon porto citation "
         "embedding chunk retrieval prompt context window latency budget cost").split()


def _text(rng: random.Random) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(rng.randint(10, 80)))


async def build(engine: Any, total: int, big: int) -> int:
    """Write the history; returns the id of the big session."""
    from sqlalchemy import insert

    from engine.db import models as m

    rng = random.Random(7)
    sizes = [big] + [200] * ((total - big) // 200)
    next_id = 1
    async with engine.db.write() as s:
        sessions = [m.Session(user_id=engine.user_id, title=f"Chat {i} about travel plans")
                    for i in range(len(sizes))]
        s.add_all(sessions)
        await s.flush()
        for session, size in zip(sessions, sizes, strict=True):
            rows = []
            for j in range(size):
                rows.append({"id": next_id, "user_id": engine.user_id,
                             "session_id": session.id, "parent_id": next_id - 1 if j else None,
                             "role": "user" if j % 2 == 0 else "assistant",
                             "content": _text(rng)})
                next_id += 1
            await s.execute(insert(m.Message), rows)
            session.current_message_id = next_id - 1
    return sessions[0].id


class DecryptTimer:
    """Wraps the engine cipher's ``decrypt`` to add up the time spent in it."""

    def __init__(self, cipher: Any) -> None:
        self.cipher, self.inner, self.seconds, self.calls = cipher, cipher.decrypt, 0.0, 0
        cipher.decrypt = self

    def __call__(self, token: str) -> str:
        start = time.perf_counter()
        try:
            return self.inner(token)
        finally:
            self.seconds += time.perf_counter() - start
            self.calls += 1


async def measure(label: str, runs: int, timer: DecryptTimer,
                  action: Callable[[], Awaitable[Any]]) -> None:
    walls, shares, per_value = [], [], []
    for _ in range(runs):
        timer.seconds, timer.calls = 0.0, 0
        start = time.perf_counter()
        result = await action()
        wall = time.perf_counter() - start
        walls.append(wall)
        shares.append(timer.seconds / wall)
        per_value.append(timer.seconds / max(timer.calls, 1))
    print(f"{label:44} {statistics.median(walls) * 1000:8.0f} ms  decrypt "
          f"{statistics.median(shares) * 100:4.0f}% ({statistics.median(per_value) * 1e6:.0f} us "
          f"x {timer.calls} values)  {result}")


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="parley-sessions-bench-"))
    os.environ["PARLEY_HOME"] = str(home)
    from engine import Engine, load_settings

    async with postgres_url(None, args.backend == "postgres") as pg:
        settings = load_settings(overrides={"database": {"url": pg}} if pg else None)
        async with Engine(settings, migrate=False) as admin:  # PostgreSQL: as an operator would
            await admin.upgrade()
        async with Engine(settings) as engine:
            start = time.perf_counter()
            big = await build(engine, args.messages, 2000)
            print(f"{settings.database_url().split(':')[0]}: wrote {args.messages} messages in "
                  f"{time.perf_counter() - start:.1f} s")
            if engine.db.backend == "postgresql":
                # Fresh tables have no statistics yet (autovacuum gathers them in real use);
                # without them the planner sorts every message for each batch.
                from sqlalchemy import text

                async with engine.db.write() as s:
                    await s.execute(text("ANALYZE"))
            timer = DecryptTimer(engine.cipher)

            async def open_big() -> str:
                detail = await engine.sessions.get(big)
                return f"{len(detail.messages)} messages"

            async def search(word: str) -> Callable[[], Awaitable[str]]:
                async def run() -> str:
                    found = await engine.sessions.search(word)
                    return f"{len(found.hits)} hits, {found.scanned} scanned"
                return run

            await measure("open a 2,000-message session", args.runs, timer, open_big)
            await measure(f"search {args.messages:,} messages, no match", args.runs, timer,
                          await search("xylophone"))
            await measure(f"search {args.messages:,} messages, common word", args.runs, timer,
                          await search("lisbon"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    asyncio.run(main(parser.parse_args()))
