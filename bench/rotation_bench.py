"""Key rotation throughput: encrypted values re-encrypted per second, end to end.

Writes ``--messages`` messages (default 50,000) in sessions of 200, each session with a
title and a system prompt and every tenth message with a citation, then runs
``engine.keys.rotate()`` once per batch size in ``--batch-sizes``. Each run covers both
passes (re-encrypting every value, then verifying that the new key alone reads every
value) and the retirement of the old key; the figure is values rewritten per second of
the whole run, the number a user waits for.

Run: ``.venv/bin/python bench/rotation_bench.py [--messages 50000]
[--batch-sizes 100,500,2000] [--backend sqlite|postgres]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_support import postgres_url  # noqa: E402
from bench.sessions_bench import WORDS  # noqa: E402


async def build(engine: Any, total: int) -> int:
    """Write the values; returns how many encrypted values there are."""
    import random

    from sqlalchemy import insert

    from engine.db import models as m

    rng = random.Random(3)
    values, next_id = 0, 1
    async with engine.db.write() as s:
        for i in range(total // 200):
            session = m.Session(user_id=engine.user_id, title=f"session {i}",
                                system_prompt="You answer briefly and cite sources.")
            s.add(session)
            await s.flush()
            rows = [{"id": next_id + j, "user_id": engine.user_id, "session_id": session.id,
                     "role": "user", "content": " ".join(rng.choices(WORDS, k=40))}
                    for j in range(200)]
            await s.execute(insert(m.Message), rows)
            cites = [{"user_id": engine.user_id, "message_id": row["id"], "marker": 1,
                      "path": "doc.md", "snippet": " ".join(rng.choices(WORDS, k=30))}
                     for row in rows[::10]]
            await s.execute(insert(m.Citation), cites)
            next_id += 200
            values += 2 + len(rows) + len(cites)
    return values


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="parley-rotation-bench-"))
    os.environ["PARLEY_HOME"] = str(home)
    from engine import Engine, load_settings

    async with postgres_url(None, args.backend == "postgres") as pg:
        settings = load_settings(overrides={"database": {"url": pg}} if pg else None)
        async with Engine(settings, migrate=False) as admin:  # PostgreSQL: as an operator would
            await admin.upgrade()
        async with Engine(settings) as engine:
            values = await build(engine, args.messages)
            print(f"{args.backend}: {values} encrypted values")
            for size in (int(x) for x in args.batch_sizes.split(",")):
                engine.settings.crypto.rotate_batch_size = size
                start = time.perf_counter()
                result = await engine.keys.rotate()
                wall = time.perf_counter() - start
                assert result.rewritten == values and result.unreadable == 0
                print(f"batch {size:5}: {wall:6.1f} s  {values / wall:8.0f} values/s "
                      "(re-encrypt + verify + retire)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=50_000)
    parser.add_argument("--batch-sizes", default="100,500,2000")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    asyncio.run(main(parser.parse_args()))
