"""Hybrid search on both backends: rankings, fusion, filters, explain, safety, scoping.

The corpus is embedded with the bundled model (real vectors), so the semantic match is a
real one: the query shares no word with the document it must find.
"""

from __future__ import annotations

import hashlib
import math
from collections import Counter
from dataclasses import dataclass

import pytest
from sqlalchemy import delete, select, text

from engine import Engine
from engine.db import models as m
from engine.teams import rls
from engine.db.search_backend import for_backend
from engine.errors import EmbedderMismatch, NotFound

# also on PostgreSQL with the pg_textsearch BM25 index: [postgres-bm25]
pytestmark = pytest.mark.keyword_index
from engine.library.retrieval import fuse, fuse_convex


@dataclass(frozen=True)
class Doc:
    path: str
    kind: str
    body: str
    tags: tuple[str, ...] = ()
    page: int | None = None


CORPUS = [
    Doc("/notes/garden.md", "markdown",
        "Tomatoes need six hours of direct sun and deep watering twice a week.", ("home",)),
    Doc("/notes/battery.txt", "text",
        "To extend notebook power endurance, dim the display and close background apps.",
        ("tech",)),
    Doc("/notes/errors.md", "markdown",
        "Error code E4711 means the backup volume is full; delete old snapshots.", ("tech",)),
    Doc("/notes/recipes/bread.md", "markdown",
        "Knead the dough for ten minutes, then let it rise for an hour before baking."),
    Doc("/manuals/warranty.pdf", "pdf",
        "The warranty covers battery replacement within two years of purchase.", (), 3),
    Doc("/notes/cats.txt", "text", "Cats sleep most of the day and hunt at dawn.", ("home",)),
]

NASTY = ['"unbalanced', 'say "hello" world', "fox AND", "OR", "NOT cats", "a AND (b OR",
         "NEAR(cats dawn)", "NEAR(", "*", "cat*", "-cats", "--", "((((", "))", "the of and",
         "", "   ", "'; DROP TABLE chunks; --", "col:umn", "^start", "back\\slash", "ünïcødé",
         "E4711:*", "a & b | !c", "<->", "x" * 5000, "word " * 200]


async def add_collection(engine: Engine, name: str, docs: list[Doc], *,
                         embedder: str | None = None, vectors: bool = True,
                         user_id: int | None = None) -> int:
    """A collection with one chunk per document, embedded with the configured model."""
    assert engine.db is not None
    model = engine.embedder()
    matrix = await model.embed_documents([d.body for d in docs]) if vectors else None
    async with engine.db.write() as s:
        coll = m.Collection(user_id=user_id or engine.user_id, name=name,
                            embedder=embedder or model.name, dimension=model.dimension)
        s.add(coll)
        await s.flush()
        if engine.db.backend == "sqlite" or coll.user_id == engine.user_id:
            # On PostgreSQL only a collection's owner (or a writer) may build its index: a
            # role seeding another user's collection leaves it without one (searches of it
            # fall back to an exact scan; this role never searches it anyway).
            await rls.vector_index(s, engine.db.backend, coll.id, 1, model.dimension)
        for i, doc in enumerate(docs):
            chunk_set = m.ChunkSet(user_id=coll.user_id, created_by=engine.user_id,
                                   content_hash=str(i), chunk_count=1)
            s.add(chunk_set)
            await s.flush()
            row = m.Document(user_id=coll.user_id, collection_id=coll.id, source_path=doc.path,
                             path_hash=hashlib.sha256(doc.path.encode()).hexdigest(),
                             kind=doc.kind, chunk_count=1, size=len(doc.body),
                             chunk_set_id=chunk_set.id)
            s.add(row)
            await s.flush()
            s.add_all([m.DocumentTag(document_id=row.id, tag=t) for t in doc.tags])
            chunk = m.Chunk(user_id=coll.user_id, chunk_set_id=chunk_set.id,
                            chunk_index=0, text=doc.body, content_hash=str(i), page=doc.page,
                            heading_path="Notes > " + doc.path.rsplit("/", 1)[-1],
                            line_start=1, line_end=1, char_start=0, char_end=len(doc.body),
                            token_count=len(doc.body.split()))
            s.add(chunk)
            await s.flush()
            if matrix is not None:
                s.add(m.ChunkEmbedding(chunk_id=chunk.id, generation=1, collection_id=coll.id,
                                       embedding=matrix[i]))
    return coll.id


async def seed(engine: Engine) -> None:
    await add_collection(engine, "notes", CORPUS)


def paths(hits: list) -> list[str]:
    return [h.path for h in hits]


async def test_keyword_match_ranks_first_with_its_keyword_rank(engine: Engine) -> None:
    await seed(engine)
    hits = await engine.retrieval.search("E4711", k=3, explain=True)
    assert hits[0].path == "/notes/errors.md"
    assert hits[0].keyword_rank == 1
    assert hits[0].rank == 1 and hits[0].collection == "notes"
    assert [h.rank for h in hits] == list(range(1, len(hits) + 1))


async def test_semantic_match_without_shared_words(engine: Engine) -> None:
    await seed(engine)
    query = "how can my laptop run longer without charging"
    hits = await engine.retrieval.search(query, k=3, explain=True)
    assert hits[0].path == "/notes/battery.txt"
    assert hits[0].vector_rank == 1
    assert hits[0].keyword_rank is None  # no word in common: found by meaning alone


async def test_fused_order_prefers_chunks_both_rankings_found(engine: Engine) -> None:
    await seed(engine)
    query = "when does the battery warranty end"
    hits = await engine.retrieval.search(query, k=6, explain=True)
    top = hits[0]
    assert top.path == "/manuals/warranty.pdf"
    assert top.keyword_rank == 1 and top.vector_rank == 1
    assert top.page == 3
    assert top.score == pytest.approx(1.0)  # best of both lists: 1 on each 0..1 scale
    assert all(0.0 <= h.score <= 1.0 for h in hits)
    assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # rank fusion: every hit's score is exactly the weighted RRF of its ranks
    engine.settings.retrieval.fusion = "rrf"
    r = engine.settings.retrieval
    ranked = await engine.retrieval.search(query, k=6, explain=True)
    assert ranked[0].path == "/manuals/warranty.pdf"
    for hit in ranked:
        expected = sum(w / (r.rrf_k + rank) for w, rank in
                       ((r.keyword_weight, hit.keyword_rank), (r.vector_weight, hit.vector_rank))
                       if rank is not None)
        assert hit.score == pytest.approx(expected)


def test_fuse_is_weighted_rrf_with_stable_ties() -> None:
    fused = fuse([1, 2, 3], [3, 4], rrf_k=10, keyword_weight=1.0, vector_weight=1.0)
    assert [cid for cid, _ in fused] == [3, 1, 2, 4]  # 2 and 4 tie on score and rank
    assert dict(fused)[3] == pytest.approx(1 / 13 + 1 / 11)
    tied = fuse([7], [5], rrf_k=60, keyword_weight=1.0, vector_weight=1.0)
    assert [cid for cid, _ in tied] == [5, 7]  # same score, same best rank: smaller id first
    only_vectors = fuse([1, 2], [2, 1], rrf_k=60, keyword_weight=0.0, vector_weight=1.0)
    assert [cid for cid, _ in only_vectors] == [2, 1]


def test_fuse_convex_scales_each_list_then_weights() -> None:
    keyword = [(1, 9.0), (2, 5.0), (3, 1.0)]  # BM25, higher is better
    vector = [(3, 0.1), (4, 0.3), (1, 0.5)]  # cosine distance, lower is better
    fused = dict(fuse_convex(keyword, vector, keyword_weight=1.0, vector_weight=1.0))
    assert fused == pytest.approx({1: 0.5, 2: 0.25, 3: 0.5, 4: 0.25})
    order = [c for c, _ in fuse_convex(keyword, vector, keyword_weight=1.0, vector_weight=1.0)]
    assert order == [1, 3, 2, 4]  # ties: better single rank, then smaller id
    heavy = fuse_convex(keyword, vector, keyword_weight=3.0, vector_weight=1.0)
    assert heavy[0] == (1, pytest.approx(0.75))
    assert fuse_convex([(5, 2.0)], [], keyword_weight=1.0, vector_weight=1.0) == \
        [(5, pytest.approx(0.5))]
    assert fuse_convex([], [], keyword_weight=0.0, vector_weight=0.0) == []


async def test_explain_off_leaves_ranks_empty(engine: Engine) -> None:
    await seed(engine)
    hits = await engine.retrieval.search("battery", k=2)
    assert hits and all(h.keyword_rank is None and h.vector_rank is None for h in hits)
    assert hits[0].heading is not None and hits[0].text


@pytest.mark.parametrize(("filters", "expected"), [
    ({"tags": ["tech"]}, {"/notes/battery.txt", "/notes/errors.md"}),
    ({"tags": ["tech", "home"]}, {"/notes/battery.txt", "/notes/errors.md",
                                  "/notes/garden.md", "/notes/cats.txt"}),
    ({"path_glob": "*.md"}, {"/notes/garden.md", "/notes/errors.md", "/notes/recipes/bread.md"}),
    ({"path_glob": "recipes/*"}, {"/notes/recipes/bread.md"}),
    ({"path_glob": ["/manuals/*", "*cats*"]}, {"/manuals/warranty.pdf", "/notes/cats.txt"}),
    ({"path_glob": "*.[mt][dx]*"}, {"/notes/garden.md", "/notes/errors.md",
                                    "/notes/recipes/bread.md", "/notes/battery.txt",
                                    "/notes/cats.txt"}),
    ({"path_glob": "*.[!m]??"}, {"/notes/battery.txt", "/notes/cats.txt",
                                 "/manuals/warranty.pdf"}),
    ({"kinds": ["pdf"]}, {"/manuals/warranty.pdf"}),
    ({"kinds": ["text"], "tags": ["home"]}, {"/notes/cats.txt"}),
    ({"tags": ["nope"]}, set()),
])
async def test_filters_apply_to_both_rankings(engine: Engine, filters: dict,
                                              expected: set[str]) -> None:
    await seed(engine)
    # a query every document matches a little, by meaning at least
    hits = await engine.retrieval.search("notes about home, tech, food and warranty", k=10,
                                         explain=True, **filters)
    assert set(paths(hits)) == expected


async def test_collections_scope_and_unknown_collection(engine: Engine) -> None:
    await seed(engine)
    await add_collection(engine, "other", [Doc("/other/e.md", "markdown",
                                               "Error code E4711 again, in another place.")])
    both = await engine.retrieval.search("E4711", k=5)
    assert {"/notes/errors.md", "/other/e.md"} <= set(paths(both))
    only = await engine.retrieval.search("E4711", k=5, collections=["other"])
    assert paths(only) == ["/other/e.md"]
    with pytest.raises(NotFound) as err:
        await engine.retrieval.search("E4711", collections=["notes", "missing"])
    assert "missing" in str(err.value) and err.value.hint


async def test_other_users_documents_are_never_found(engine: Engine) -> None:
    assert engine.db is not None
    async with engine.db.write() as s:
        intruder = m.User(name="someone-else")
        s.add(intruder)
        await s.flush()
    await add_collection(engine, "theirs", [Doc("/secret.md", "markdown",
                                                 "Error code E4711 in a private file.")],
                         user_id=intruder.id)
    await seed(engine)
    hits = await engine.retrieval.search("E4711 private file", k=10)
    assert "/secret.md" not in paths(hits)
    with pytest.raises(NotFound):
        await engine.retrieval.search("E4711", collections=["theirs"])


@pytest.mark.parametrize("query", NASTY)
async def test_any_string_is_a_safe_query(engine: Engine, query: str) -> None:
    await seed(engine)
    hits = await engine.retrieval.search(query, k=3)
    assert isinstance(hits, list)
    assert all(h.path for h in hits)


async def test_only_stop_words_or_no_words_give_no_keyword_hits(engine: Engine) -> None:
    await seed(engine)
    assert await engine.retrieval.search("", k=3) == []
    hits = await engine.retrieval.search("the of and", k=3, explain=True)
    if engine.db is not None and engine.db.backend == "postgresql":
        assert all(h.keyword_rank is None for h in hits)  # English stop words are dropped


async def test_embedder_mismatch_names_reindex(engine: Engine) -> None:
    await add_collection(engine, "old", CORPUS[:2], embedder="openai:ollama/nomic-embed-text")
    with pytest.raises(EmbedderMismatch) as err:
        await engine.retrieval.search("battery")
    assert "parley reindex --embed" in (err.value.hint or "")
    assert "nomic-embed-text" in str(err.value)


async def test_collection_without_vectors_is_searched_by_keywords(engine: Engine) -> None:
    await add_collection(engine, "fresh", CORPUS, embedder="some/other-model", vectors=False)
    hits = await engine.retrieval.search("E4711 backup", k=3, explain=True)
    assert hits[0].path == "/notes/errors.md"
    assert all(h.vector_rank is None for h in hits)


async def test_deleted_documents_never_come_back(engine: Engine) -> None:
    await seed(engine)
    assert engine.db is not None
    async with engine.db.write() as s:
        await s.execute(delete(m.Document).where(m.Document.source_path == "/notes/errors.md"))
    hits = await engine.retrieval.search("E4711 backup volume", k=6)
    assert "/notes/errors.md" not in paths(hits)


async def test_search_many_keeps_query_order(engine: Engine) -> None:
    await seed(engine)
    found = await engine.retrieval.search_many(["E4711", "knead dough", ""], k=1)
    assert [paths(h) for h in found] == [["/notes/errors.md"], ["/notes/recipes/bread.md"], []]


async def test_quantised_search_matches_exact_search(engine: Engine) -> None:
    """Above ``quantize_above`` SQLite searches sign bits, first in its bit table, then in
    memory once that copy is built; both re-rank exactly. PostgreSQL ignores the setting."""
    from engine.db import sqlite_bits

    await seed(engine)
    query = "laptop power saving"

    async def ranked(**filters: object) -> list[tuple[int, int | None]]:
        hits = await engine.retrieval.search(query, k=6, explain=True, **filters)
        return [(h.chunk_id, h.vector_rank) for h in hits]

    exact, exact_tech = await ranked(), await ranked(tags=["tech"])
    engine.settings.retrieval.quantize_above = 1  # every collection counts as large
    assert await ranked() == exact  # bit table
    assert await ranked() == exact  # bit table; the second search starts the in-memory copy
    await sqlite_bits.wait_ready()
    assert engine.db is not None
    url = engine.settings.database.url or ""
    mine = [key for key in sqlite_bits._ready if url.endswith(key[0])]
    assert len(mine) == (1 if engine.db.backend == "sqlite" else 0)
    assert await ranked() == exact  # in-memory bits
    assert await ranked(tags=["tech"]) == exact_tech
    await add_collection(engine, "more", [Doc("/more.txt", "text", "Laptop power tips.")])
    hits = await engine.retrieval.search(query, k=1)  # changed: never a stale copy
    assert hits[0].path == "/more.txt"


async def test_keyword_scores_are_bm25(engine: Engine) -> None:
    """The PostgreSQL ranking is Okapi BM25 over the lexemes PostgreSQL indexed; SQLite's is
    FTS5's bm25(). Both rank a rare term above a common one and a short chunk above a long
    one with the same matches."""
    docs = [Doc("/a", "text", "zebra apple"), Doc("/b", "text", "apple banana"),
            Doc("/c", "text", "apple cherry"),
            Doc("/d", "text", "zebra apple " + "filler words there " * 3),
            *(Doc(f"/x{i}", "text", f"mango kiwi melon {i}") for i in range(6))]
    cid = await add_collection(engine, "bm", docs, vectors=False)
    assert engine.db is not None
    backend = for_backend(engine.db.backend)
    async with engine.db.read() as s:
        ranked = await backend.keyword(s, [cid], "zebra apple", 10)
        ids = dict((await s.execute(select(m.Chunk.id, m.Document.source_path).join(
            m.Document, m.Document.chunk_set_id == m.Chunk.chunk_set_id))).all())
        assert [ids[c] for c, _ in ranked][:2] == ["/a", "/d"]
        if engine.db.backend != "postgresql":
            return
        rows = (await s.execute(text(
            "SELECT c.id, c.token_count, tsvector_to_array(c.tsv) FROM chunks c"))).all()
        counts = {}
        for chunk_id, _, _ in rows:
            pairs = (await s.execute(text(
                "SELECT lexeme, cardinality(positions) FROM chunks, unnest(tsv) "
                "WHERE id = :id"), {"id": chunk_id})).all()
            counts[chunk_id] = Counter(dict(pairs))
        uses_index = (await engine.keyword_search()).method == "pg_textsearch"
    lengths = {chunk_id: tokens for chunk_id, tokens, _ in rows}
    if uses_index:
        # pg_textsearch counts a chunk's length in indexed words (stop words left out) and
        # stores it in one byte, so its scores are BM25 within a small tolerance
        lengths = {chunk_id: sum(tf.values()) for chunk_id, tf in counts.items()}
    n, avg = len(rows), sum(lengths.values()) / len(rows)
    expected = {}
    for chunk_id, tf in counts.items():
        score = 0.0
        for lex in ("zebra", "appl"):
            df = sum(1 for c in counts.values() if lex in c)
            if lex in tf:
                idf = math.log(1 + (n - df + 0.5) / (df + 0.5))
                norm = 1.2 * (0.25 + 0.75 * lengths[chunk_id] / avg)
                score += idf * tf[lex] * 2.2 / (tf[lex] + norm)
        expected[chunk_id] = score
    tolerance = 0.02 if uses_index else 1e-6
    assert {c: pytest.approx(sc, rel=tolerance) for c, sc in ranked} == \
        {c: pytest.approx(expected[c], rel=tolerance) for c, _ in ranked}


def assert_same_top(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    """The same scores in the same order, and the same chunks, where chunks whose scores tie
    (equal up to rounding) may come in either order, and a tie at the cut either chunk."""
    assert [round(sc, 9) for _, sc in got] == [round(sc, 9) for _, sc in want]
    cut = round(want[-1][1], 9) if want else None
    assert sorted((round(sc, 9), c) for c, sc in got if round(sc, 9) != cut) == \
        sorted((round(sc, 9), c) for c, sc in want if round(sc, 9) != cut)


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_pruned_bm25_on_postgresql_equals_scoring_every_chunk(
        engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    """MaxScore pruning skips chunks that only hold common words, yet returns exactly the
    top k of full BM25 scoring, with or without a document filter."""
    import random

    from engine.db import pg_bm25

    rng = random.Random(11)
    shares = {"alpha": 0.9, "beta": 0.7, "gamma": 0.5, "delta": 0.3, "kappa": 0.15,
              "lambda": 0.08, "sigma": 0.04, "omega": 0.02, "zeta": 0.01}
    docs = []
    for i in range(400):
        words = [w for w, share in shares.items() for _ in range(rng.randint(1, 4))
                 if rng.random() < share]
        words += [f"filler{rng.randint(0, 50)}" for _ in range(rng.randint(0, 40))]
        rng.shuffle(words)
        docs.append(Doc(f"/d/{i}.txt" if i % 2 else f"/e/{i}.txt", "text", " ".join(words)))
    cid = await add_collection(engine, "zipf", docs, vectors=False)
    assert engine.db is not None
    async with engine.db.write() as s:
        await s.execute(text("ANALYZE chunks"))  # the statistics that tell common words
        common = await pg_bm25.common_lexemes(s, list(shares))
    assert {"alpha", "beta", "gamma", "delta", "kappa"} <= common and "zeta" not in common
    passes: list[list[str]] = []
    real_call = pg_bm25._Scorer.__call__

    async def recording(self: object, matching: list[str]) -> list[tuple[int, float]]:
        passes.append(list(matching))
        return await real_call(self, matching)  # type: ignore[arg-type]

    monkeypatch.setattr(pg_bm25._Scorer, "__call__", recording)
    async with engine.db.read() as s:
        pairs = (await s.execute(text(
            "SELECT c.id, u.lexeme, cardinality(u.positions) FROM chunks c, unnest(c.tsv) u "
            "WHERE c.chunk_set_id IN (SELECT chunk_set_id FROM documents "
            "WHERE collection_id = :cid)"), {"cid": cid})).all()
        rows = (await s.execute(
            select(m.Chunk.id, m.Chunk.token_count, m.Document.source_path)
            .join(m.Document, m.Document.chunk_set_id == m.Chunk.chunk_set_id))).all()
    tf: dict[int, Counter[str]] = {}
    for chunk_id, lexeme, count in pairs:
        tf.setdefault(chunk_id, Counter())[lexeme] = count
    length = {chunk_id: tokens for chunk_id, tokens, _ in rows}
    path = {chunk_id: p for chunk_id, _, p in rows}
    n, avg = len(length), sum(length.values()) / len(length)

    def reference(lexemes: list[str], k: int, prefix: str = "") -> list[tuple[int, float]]:
        scores: dict[int, float] = {}
        for chunk_id, counts in tf.items():
            if not path[chunk_id].startswith(prefix):
                continue
            for lex in lexemes:
                if counts[lex]:
                    df = sum(1 for c in tf.values() if c[lex])
                    norm = 1.2 * (0.25 + 0.75 * length[chunk_id] / avg)
                    scores[chunk_id] = scores.get(chunk_id, 0.0) + pg_bm25.idf(n, df) \
                        * counts[lex] * 2.2 / (counts[lex] + norm)
        return sorted(scores.items(), key=lambda item: (-item[1], item[0]))[:k]

    from engine.db.search_filter import DocFilter

    backend = for_backend("postgresql")
    shapes: set[int] = set()
    for _ in range(40):
        words = rng.sample(sorted(shares), rng.randint(1, 4))
        for k in (1, 5, 20, 80):
            for prefix in ("", "/e/"):
                passes.clear()
                flt = DocFilter(path_globs=("/e/*",)) if prefix else None
                async with engine.db.read() as s:
                    got = await backend.keyword(s, [cid], " ".join(words), k, flt=flt)
                want = reference(words, k, prefix)  # these words are their own stems
                assert_same_top(got, want)
                shapes.add(len(passes))
    assert shapes == {1, 2}  # both pruned and two-pass queries were exercised
