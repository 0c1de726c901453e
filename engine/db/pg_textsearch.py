"""Keyword search through the ``pg_textsearch`` BM25 index, when the server has it.

``pg_textsearch`` (PostgreSQL licence) adds a ``bm25`` index type whose top-k scan is
Block-Max WAND: a keyword query at a million chunks costs a few milliseconds instead of the
hundreds that exact BM25 in SQL (``engine/db/pg_bm25.py``) needs when a query holds common
words. This module owns everything about it: detecting it, creating its index, querying it.

- **One index on ``chunks.text``** (``ix_chunks_bm25``, ``text_config='english'``, the
  configuration of the ``tsv`` column; k1 = 1.2, b = 0.75 as in ``pg_bm25``). Version 1.0
  of the extension builds no expression index and ignores a partial index's predicate, so
  there cannot be one index per collection: its statistics (number of chunks, mean length,
  how many chunks hold a word) are those of every chunk in the database.
- **Collections, tags, paths and kinds stay exact.** The index hands out the best chunks of
  the whole database; a scoped search over-fetches (``k`` divided by the scope's share of
  the chunks, with a margin) and keeps the rows in scope. When at least ``k`` survive they
  are exactly the scope's best ``k`` (every row left out scores lower). When fewer survive
  although the index had more to give, or when the scope is too small a share for an
  over-fetch to be cheap, the search falls back to the exact SQL BM25, which counts its
  statistics over the searched collections only.
- **Detection happens at open** (``detect``); ``parley db current`` and ``parley config
  show`` say which method is in use and, when it is the fallback, why. The index is created
  by the migration when the extension is there, and by every ``parley db upgrade`` (the
  command to run after installing the extension on an existing database).
- A statement that fails inside the extension (the library no longer preloaded after a
  server restart, say) fails that one search with a clear message; the following searches
  of the process use exact SQL BM25. (A savepoint to fall back within the same search would
  slow every later statement of the transaction.)
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace

from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import pg_settings
from engine.db.connect import Database
from engine.db.fts_query import query_terms
from engine.db.search_filter import DocFilter, doc_conditions, placeholders
from engine.errors import DatabaseError
from engine.types import KeywordSearchInfo

log = logging.getLogger(__name__)

EXTENSION = "pg_textsearch"
INDEX = "ix_chunks_bm25"
INDEX_DDL = (f"CREATE INDEX IF NOT EXISTS {INDEX} ON chunks USING bm25 (text) "
             "WITH (text_config = 'english', k1 = 1.2, b = 0.75)")
METHOD_INDEX = "pg_textsearch"
METHOD_SQL = "sql-bm25"

MAX_FETCH = 20_000
"""Most rows one over-fetch reads from the index; a scope needing more uses exact SQL."""
MARGIN = 1.5
"""Over-fetch margin on top of ``k / share``: scopes are not spread evenly over the index."""
MAX_DEPTH = 100_000
"""The largest ``pg_textsearch.default_limit`` the extension accepts."""

MIN_DEPTH = 200
"""The shallowest top k the index computes: version 1.0's top k is approximate when k is
small (measured at 100k chunks: the top 10 of a top-25 scan held 88% of the top 10 of a
top-5000 scan, of a top-160 scan 98%, of a top-1000 scan 100%)."""


def _depth(fetch: int) -> int:
    """How deep the index scan goes for a statement that reads ``fetch`` rows.

    The extension learns a query's LIMIT only while planning it, and planning that scan
    loads the index's statistics (20-30 ms per transaction at 100k chunks, measured; the
    scan itself takes 1-2 ms). A prepared statement's plan is cached after five runs only
    when its cost looks no worse than planning again, so whether a connection planned on
    every search depended on the first queries it happened to run. So the scan runs from a
    cached (generic) plan, and takes its depth from ``pg_textsearch.default_limit``, set to
    at least the statement's LIMIT: that also keeps a deep over-fetch from being silently cut
    at the default 1,000. Both settings end with the transaction, which after the scan runs
    only index scans and primary-key reads (a cached plan is right for them); exact SQL BM25,
    which needs plans made for its words, restores the default first (``restore_planning``).
    """
    return min(max(int(fetch), MIN_DEPTH), MAX_DEPTH)


@dataclass(frozen=True, slots=True)
class KeywordIndexState:
    """What the server offers for keyword search and what Parley uses."""

    method: str  # METHOD_INDEX or METHOD_SQL
    reason: str  # one line: why this method (what to do to get the index, when it is not)
    extension_version: str | None = None

    @property
    def uses_index(self) -> bool:
        return self.method == METHOD_INDEX

    def describe(self) -> str:
        name = (f"pg_textsearch {self.extension_version} BM25 index" if self.uses_index
                else "exact BM25 in SQL")
        return f"{name} ({self.reason})"


_states: dict[str, KeywordIndexState] = {}


def _key(url: object) -> str:
    return str(url)


def _probe_sql() -> str:
    return (
        "SELECT (SELECT extversion FROM pg_extension WHERE extname = 'pg_textsearch'),"
        " (SELECT default_version FROM pg_available_extensions WHERE name = 'pg_textsearch'),"
        # pg_settings hides this setting from roles without pg_read_all_settings (a team
        # member, a non-superuser owner) where current_setting() would raise: NULL = unknown.
        " (SELECT setting FROM pg_settings WHERE name = 'shared_preload_libraries'),"
        f" (SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass('{INDEX}'))")


def _preloaded(preload: object, present: object) -> bool:
    """Whether the library is preloaded; when this role may not read the setting, assume it
    is if the extension is there (creating or using it fails clearly otherwise)."""
    if preload is None:
        return present is not None
    return EXTENSION in [p.strip() for p in str(preload).split(",")]


def _state_from(row: Sequence[object], enabled: bool) -> KeywordIndexState:
    installed, available, preload, index_valid = row
    preloaded = _preloaded(preload, installed)
    version = str(installed) if installed else None
    if not enabled:
        return KeywordIndexState(METHOD_SQL, "retrieval.bm25_index is off", version)
    if available is None and installed is None:
        return KeywordIndexState(METHOD_SQL, "the server has no pg_textsearch extension")
    if not preloaded:
        return KeywordIndexState(
            METHOD_SQL, "pg_textsearch is not in the server's shared_preload_libraries: add it "
            "and restart PostgreSQL", version)
    if installed is None:
        return KeywordIndexState(
            METHOD_SQL, "pg_textsearch is not installed in this database: run parley db "
            "upgrade as the schema owner (or CREATE EXTENSION pg_textsearch)")
    if index_valid is None:
        return KeywordIndexState(METHOD_SQL, f"the {INDEX} index is missing: run parley db "
                                 "upgrade as the schema owner", version)
    if not index_valid:
        return KeywordIndexState(METHOD_SQL, f"the {INDEX} index is invalid: run REINDEX INDEX "
                                 f"{INDEX}", version)
    return KeywordIndexState(METHOD_INDEX, "server extension detected", version)


async def detect(s: AsyncSession, *, enabled: bool = True) -> KeywordIndexState:
    """Probe the server (cheap catalog reads) and remember the answer for this database."""
    row = (await s.execute(text(_probe_sql()))).one()
    state = _state_from(tuple(row), enabled)
    _states[_key(s.bind.url)] = state
    return state


def state_for(url: object) -> KeywordIndexState | None:
    return _states.get(_key(url))


def forget(url: object) -> None:
    _states.pop(_key(url), None)


def ensure_index(conn: Connection) -> str:
    """Create the extension (when the server offers it preloaded and this role may) and the
    index (when the extension is installed). For the migration and ``parley db upgrade``;
    never fails: the reason it did nothing is returned, and the search falls back."""
    installed, available, preload, index_valid = conn.execute(text(_probe_sql())).one()
    preloaded = _preloaded(preload, available)
    if installed is None:
        if available is None or not preloaded:
            return "pg_textsearch is not available (or not preloaded) on this server"
        try:
            with conn.begin_nested():  # a refusal must not abort the migration
                conn.execute(text("CREATE EXTENSION IF NOT EXISTS pg_textsearch"))
        except DBAPIError as exc:
            detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            return f"cannot create the pg_textsearch extension: {detail}"
    elif not preloaded:
        return "pg_textsearch is not in shared_preload_libraries"
    if index_valid is False:
        conn.execute(text(f"DROP INDEX IF EXISTS {INDEX}"))
    conn.execute(text(INDEX_DDL))
    return "index ready"


def drop_index(conn: Connection) -> None:
    conn.execute(text(f"DROP INDEX IF EXISTS {INDEX}"))


# -- searching ---------------------------------------------------------------------------------
async def _scope_share(s: AsyncSession, collection_ids: Sequence[int],
                       flt: DocFilter | None) -> float:
    """The share of the index's rows a search may return (from document chunk counts and
    the planner's row estimate: both cheap, both approximate, which the margin absorbs)."""
    cids, params = placeholders("cid", collection_ids)
    where = f"d.collection_id IN ({cids})"
    if flt:
        cond, fparams = doc_conditions(flt, "postgresql")
        where += f" AND {cond}"
        params.update(fparams)
    docs, scoped, total = (await s.execute(text(
        f"SELECT count(*), coalesce(sum(d.chunk_count), 0), (SELECT reltuples "
        f"FROM pg_class WHERE oid = 'chunks'::regclass) FROM documents d WHERE {where}"),
        params)).one()
    if total is None or total <= 0:  # never analysed (a new table): count it, once
        total = await s.scalar(text("SELECT count(*) FROM chunks"))
    if not docs:
        return 0.0
    if not scoped:
        return 1.0  # counts not recorded: assume a large scope (the certificate still holds)
    return min(1.0, float(scoped) / max(float(total or 0), float(scoped)))


async def search(s: AsyncSession, collection_ids: Sequence[int], query: str, k: int, *,
                 flt: DocFilter | None = None) -> list[tuple[int, float]] | None:
    """(chunk id, BM25 score, higher is better) of the best ``k`` chunks in scope, or None
    when the index cannot answer exactly (the caller then uses exact SQL BM25)."""
    words = " ".join(query_terms(query))
    if not words or k <= 0:
        return []
    # First as if the scope were the whole index (one statement: the common case of one
    # large collection, or a team's shared one); only when that leaves fewer than k rows in
    # scope is the scope's share estimated, for one deeper fetch or the exact fallback.
    fetch = math.ceil(k * MARGIN) + 10
    for attempt in range(2):
        hits, matched = await _fetch(s, collection_ids, words, k, fetch, flt)
        if len(hits) >= k or matched < fetch:
            # k rows in scope among the index's best: nothing outside can beat them; or the
            # index had no more matching rows to give
            return hits
        if attempt:
            break
        share = await _scope_share(s, collection_ids, flt)
        if share <= 0.0:
            return []
        fetch = max(math.ceil(k * MARGIN / share) + 10, fetch * 4)
        if fetch > MAX_FETCH:
            break  # a small scope: exact SQL BM25 is both exact and cheap there
    return None


async def _fetch(s: AsyncSession, collection_ids: Sequence[int], words: str, k: int,
                 fetch: int, flt: DocFilter | None) -> tuple[list[tuple[int, float]], int]:
    """The best ``k`` in scope among the index's top ``fetch`` of the whole table, and how
    many of those ``fetch`` rows matched a word at all."""
    # The score comes from the scan (bm25_get_current_score); the <@> expression in the
    # select list would score every row again from its text.
    stmt = text(
        "SELECT c.id, c.chunk_set_id, bm25_get_current_score() FROM chunks c"
        f" ORDER BY c.text <@> to_bm25query(:q, '{INDEX}') LIMIT {int(fetch)}")
    try:
        await pg_settings.apply(s, plan_cache_mode="force_generic_plan",
                                pg_textsearch__default_limit=str(_depth(fetch)))
        rows = (await s.execute(stmt, {"q": words})).all()
    except DBAPIError as exc:
        if getattr(exc, "connection_invalidated", False):
            raise
        # No savepoint around the scan (it would slow every statement after it in the
        # transaction): this search fails with a clear message, the next ones are exact.
        detail = _disable(s, exc)
        raise DatabaseError(f"keyword search through the pg_textsearch index failed: {detail}",
                            "search again: Parley uses exact SQL BM25 from now on; see "
                            "parley db current") from None
    matched = [(int(cid), int(set_id), -float(score))
               for cid, set_id, score in rows if score is not None and score < 0]
    allowed = await _sets_in_scope(s, {set_id for _, set_id, _ in matched}, collection_ids,
                                   flt)
    hits = [(cid, score) for cid, set_id, score in matched if set_id in allowed]
    hits.sort(key=lambda hit: (-hit[1], hit[0]))
    return hits[:k], len(matched)


async def restore_planning(s: AsyncSession) -> None:
    """Plan statements for their parameters again in this transaction (after ``search``)."""
    await pg_settings.apply(s, plan_cache_mode="auto")


async def _sets_in_scope(s: AsyncSession, sets: set[int], collection_ids: Sequence[int],
                         flt: DocFilter | None) -> set[int]:
    """Which of the chunk ``sets`` a document of ``collection_ids`` passing the tag/path/kind
    filter holds (identical copies share a chunk set, so scope goes through documents)."""
    if not sets or not collection_ids:
        return set()
    cond, params = doc_conditions(flt, "postgresql") if flt else ("", {})
    ids, id_params = placeholders("set", sorted(sets))
    cids, cid_params = placeholders("cid", collection_ids)
    rows = await s.execute(text(
        f"SELECT DISTINCT d.chunk_set_id FROM documents d WHERE d.chunk_set_id IN ({ids}) "
        f"AND d.collection_id IN ({cids})" + (f" AND {cond}" if cond else "")),
        {**params, **id_params, **cid_params})
    return {int(set_id) for (set_id,) in rows}


def _disable(s: AsyncSession, exc: DBAPIError) -> str:
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    key = _key(s.bind.url)
    current = _states.get(key) or KeywordIndexState(METHOD_INDEX, "")
    _states[key] = replace(current, method=METHOD_SQL,
                           reason=f"the pg_textsearch index failed: {detail}")
    log.warning("pg_textsearch search failed, using exact SQL BM25 from now on: %s", detail)
    return detail


async def keyword_search_info(db: Database, *, enabled: bool = True) -> KeywordSearchInfo:
    """Which keyword ranking ``db`` uses; on PostgreSQL this probes the server again."""
    if db.backend != "postgresql":
        return KeywordSearchInfo("fts5", "SQLite FTS5 with its bm25() ranking")
    async with db.read() as s:
        state = await detect(s, enabled=enabled)
    return KeywordSearchInfo(state.method, state.describe())
