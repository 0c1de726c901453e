"""The cost of row-level security: a member's queries with the policies on, off, on again.

On a throwaway PostgreSQL (or ``--url`` of a superuser), a member role (``parley team
add``) owns a history of ``--messages`` messages (one session of 2,000) and a collection of
``--chunks`` synthetic chunks (``bench/latency_data.py``). Then, as that member, in one
run: policies on, policies off (``DISABLE ROW LEVEL SECURITY`` on every table, grants
unchanged), policies on again; for each, the median of ``--runs`` openings of the
2,000-message session and p50/p95 of hybrid search over ``--queries`` queries (after one
warm-up pass each).

Run: ``.venv/bin/python bench/rls_cost.py [--messages 20000] [--chunks 100000] [--runs 7]
[--queries 30]``
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.bench_support import postgres_url  # noqa: E402
from bench.latency_data import bulk_load, make_queries  # noqa: E402
from bench.sessions_bench import build  # noqa: E402

MEMBER = "bench_member"


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


async def _policies(admin: Any, on: bool) -> None:
    from sqlalchemy import text

    from engine.teams.rls import FORCED_TABLES

    async with admin.db.write() as s:
        for table in (*FORCED_TABLES, "chunk_sets", "watched_folders"):
            await s.execute(text(f"ALTER TABLE {table} "
                                 f"{'ENABLE' if on else 'DISABLE'} ROW LEVEL SECURITY"))


async def _measure(member: Any, big: int, texts: list[str], runs: int) -> tuple[float, ...]:
    async def open_big() -> None:
        detail = await member.sessions.get(big)
        assert len(detail.messages) == 2000

    await open_big()
    opens = []
    for _ in range(runs):
        started = time.perf_counter()
        await open_big()
        opens.append((time.perf_counter() - started) * 1000)
    for query in texts:  # warm-up: model, statistics and BM25 caches
        await member.retrieval.search(query, k=10)
    searches = []
    for query in texts:
        started = time.perf_counter()
        hits = await member.retrieval.search(query, k=10)
        searches.append((time.perf_counter() - started) * 1000)
        assert hits, query
    return statistics.median(opens), _pct(searches, 0.5), _pct(searches, 0.95)


async def main(args: argparse.Namespace) -> None:
    home = Path(tempfile.mkdtemp(prefix="parley-rls-bench-"))
    os.environ["PARLEY_HOME"] = str(home)
    from sqlalchemy import text
    from sqlalchemy.engine import make_url

    from engine import Engine, load_settings

    async with postgres_url(args.url, True) as url:
        assert url is not None
        admin_settings = load_settings(overrides={"database": {"url": url}})
        async with Engine(admin_settings, migrate=False) as admin:
            await admin.upgrade()
        member_url = make_url(url).set(username=MEMBER, password=None) \
            .render_as_string(hide_password=False)
        member_settings = load_settings(overrides={"database": {"url": member_url}})
        async with Engine(admin_settings) as admin:
            await admin.team.add(MEMBER, create=True)
            started = time.perf_counter()
            # COPY cannot write tables under RLS: the chunks are loaded by the superuser
            # and handed to the member.
            await bulk_load(admin, args.chunks)
            async with Engine(member_settings) as member:  # its user and key check value
                member_id = member.user_id
                big = await build(member, args.messages, 2000)
            async with admin.db.write() as s:
                for table in ("collections", "documents", "chunk_sets", "chunks"):
                    await s.execute(text(f"UPDATE {table} SET user_id = :u"), {"u": member_id})
                await s.execute(text("ANALYZE"))
            print(f"PostgreSQL: {args.messages:,} messages, {args.chunks:,} chunks owned by a "
                  f"member, loaded in {time.perf_counter() - started:.0f} s")
            texts, _ = make_queries(args.queries)
            print(f"{'policies':10} {'open 2,000-msg session':>24} {'search p50':>11} "
                  f"{'search p95':>11}")
            for label, on in (("on", True), ("off", False), ("on again", True)):
                await _policies(admin, on)
                async with Engine(member_settings) as member:
                    opened, p50, p95 = await _measure(member, big, texts, args.runs)
                print(f"{label:10} {opened:21.1f} ms {p50:8.1f} ms {p95:8.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a superuser URL (default: a throwaway server)")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--chunks", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--queries", type=int, default=30)
    asyncio.run(main(parser.parse_args()))
