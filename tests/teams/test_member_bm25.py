"""Exact SQL BM25 for a team member: the same ranking as the owner's over the same shared
collection, and common words still skipped by MaxScore although PostgreSQL hides the
planner statistics (``pg_stats``) of a table under row-level security from its readers.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import text

from engine.db import pg_bm25
from tests.conftest import PostgresServer
from tests.engine.test_retrieval import Doc, add_collection, assert_same_top
from tests.teams.support import Person, TeamDatabase

SHARES = {"alpha": 0.9, "beta": 0.6, "gamma": 0.3, "delta": 0.12, "sigma": 0.012,
          "omega": 0.008, "zeta": 0.004}
"""How likely each of a document's one to three draws of a word is: the first four are
common words (in more than 5% of the documents), the last three rare."""


@pytest.fixture
async def shared(postgres_server: PostgresServer, parley_home: Path,
                 tmp_path: Path) -> AsyncIterator[tuple[Person, Person, int, dict[str, float]]]:
    """An owner's collection of 600 documents, shared with every member; one member."""
    db = TeamDatabase(postgres_server.admin_url, tmp_path)
    owner = await db.create()
    try:
        assert owner.cli("db", "upgrade").returncode == 0
        alice = db.person(db.role("alice"))
        assert owner.cli("team", "add", alice.role, "--create").returncode == 0
        rng = random.Random(5)
        docs = []
        for i in range(600):
            words = [w for w, share in SHARES.items() for _ in range(rng.randint(1, 3))
                     if rng.random() < share]
            words += [f"filler{rng.randint(0, 80)}" for _ in range(rng.randint(0, 30))]
            rng.shuffle(words)
            docs.append(Doc(f"/handbook/{i}.txt", "text", " ".join(words) or "empty"))
        async with owner.engine() as engine:
            cid = await add_collection(engine, "handbook", docs, vectors=False)
            assert engine.db is not None
            async with engine.db.write() as s:
                await s.execute(text("ANALYZE chunks"))  # what pg_stats would tell from
        shared_ = owner.cli("collections", "share", "handbook", "--all")
        assert shared_.returncode == 0, shared_.stderr
        share = {w: sum(w in d.body.split() for d in docs) / len(docs) for w in SHARES}
        yield owner, alice, cid, share
    finally:
        await db.drop()


async def _rank(person: Person, cid: int, query: str, k: int,
                passes: list[list[str]]) -> list[tuple[int, float]]:
    async with person.engine() as engine:
        assert engine.db is not None
        async with engine.db.read() as s:
            passes.clear()
            return await pg_bm25.bm25(s, [cid], query, k)


async def test_a_members_bm25_ranking_equals_the_owners_and_skips_common_words(
        shared: tuple[Person, Person, int, dict[str, float]],
        monkeypatch: pytest.MonkeyPatch) -> None:
    owner, alice, cid, share = shared
    assert {w for w, sh in share.items() if sh > pg_bm25.COMMON_SHARE} == \
        {"alpha", "beta", "gamma", "delta"}
    async with alice.engine() as engine:
        assert engine.db is not None
        async with engine.db.read() as s:
            # the statistics are hidden from the member: this is what the counts replace
            assert await pg_bm25.row_security_active(s)
            assert await pg_bm25.common_lexemes(s, list(SHARES)) == set()
    passes: list[list[str]] = []
    real_call = pg_bm25._Scorer.__call__

    async def recording(self: pg_bm25._Scorer, matching: list[str]) -> list[tuple[int, float]]:
        passes.append([*self.rare, *matching])
        return await real_call(self, matching)

    monkeypatch.setattr(pg_bm25._Scorer, "__call__", recording)
    queries = ["alpha beta zeta", "alpha gamma omega sigma", "beta delta", "zeta", "alpha"]
    for query in queries:
        for k in (3, 10, 50):
            pg_bm25._df_cache.clear()  # each person counts for themselves
            as_owner = await _rank(owner, cid, query, k, passes)
            pg_bm25._df_cache.clear()
            as_member = await _rank(alice, cid, query, k, passes)
            assert as_member == as_owner and as_member
            # the common words were recognised: the first pass scores only the chunks that
            # hold a rare word (or the least common word, when all of them are common)
            words = query.split()
            rare = {w for w in words if share[w] <= pg_bm25.COMMON_SHARE} or \
                {min(words, key=share.__getitem__)}
            assert set(passes[0]) == rare

    # exact: the same as scoring every chunk that holds any of the words (nothing common)
    for query in queries:
        pg_bm25._df_cache.clear()
        monkeypatch.setattr(pg_bm25, "COMMON_SHARE", 1.0)
        everything = await _rank(alice, cid, query, 10, passes)
        assert len(passes) == 1 and sorted(passes[0]) == sorted(query.split())
        pg_bm25._df_cache.clear()
        monkeypatch.setattr(pg_bm25, "COMMON_SHARE", 0.05)
        assert_same_top(await _rank(alice, cid, query, 10, passes), everything)
