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
  server restart, say) runs in a savepoint: the search falls back to exact SQL BM25 for the
  rest of the process instead of failing.
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

from engine.db.connect import Database
from engine.db.fts_query import query_terms
from engine.db.search_filter import DocFilter, doc_conditions, placeholders
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
        " current_setting('shared_preload_libraries'),"
        f" (SELECT i.indisvalid FROM pg_index i WHERE i.indexrelid = to_regclass('{INDEX}'))")


def _state_from(row: Sequence[object], enabled: bool) -> KeywordIndexState:
    installed, available, preload, index_valid = row
    preloaded = EXTENSION in [p.strip() for p in str(preload or "").split(",")]
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
    preloaded = EXTENSION in [p.strip() for p in str(preload or "").split(",")]
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
        f"SELECT count(*), coalesce(sum(d.chunk_count), 0), (SELECT greatest(reltuples, 0) "
        f"FROM pg_class WHERE oid = 'chunks'::regclass) FROM documents d WHERE {where}"),
        params)).one()
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
    if not words:
        return []
    share = await _scope_share(s, collection_ids, flt)
    if share <= 0.0:
        return []
    fetch = math.ceil(k * MARGIN / share) + 10
    if fetch > MAX_FETCH:
        return None  # a small scope: exact SQL BM25 is both exact and cheap there
    cids, params = placeholders("cid", collection_ids)
    scope = f"t.collection_id IN ({cids})"
    if flt:
        cond, fparams = doc_conditions(flt, "postgresql")
        scope += f" AND EXISTS (SELECT 1 FROM documents d WHERE d.id = t.document_id AND {cond})"
        params.update(fparams)
    params.update({"q": words, "fetch": fetch, "k": int(k)})
    # The inner query is the index's top-``fetch`` over the whole table (Block-Max WAND);
    # rows that hold none of the words score 0 and are dropped.
    stmt = text(
        "WITH top AS MATERIALIZED ("
        f" SELECT c.id, c.collection_id, c.document_id, c.text <@> to_bm25query(:q, '{INDEX}')"
        "  AS score FROM chunks c"
        f" ORDER BY c.text <@> to_bm25query(:q, '{INDEX}') LIMIT :fetch),"
        " hits AS ("
        f" SELECT t.id, -t.score AS score FROM top t WHERE t.score < 0 AND {scope}"
        " ORDER BY t.score, t.id LIMIT :k)"
        " SELECT h.id, h.score, m.n FROM (SELECT count(*) AS n FROM top WHERE score < 0) m"
        " LEFT JOIN hits h ON true ORDER BY h.score DESC, h.id")
    try:
        async with s.begin_nested():
            rows = (await s.execute(stmt, params)).all()
    except DBAPIError as exc:
        if getattr(exc, "connection_invalidated", False):
            raise
        _disable(s, exc)
        return None
    matched = int(rows[0][2]) if rows else 0
    hits = [(int(cid), float(score)) for cid, score, _ in rows if cid is not None]
    if len(hits) < k and matched >= fetch:
        return None  # the scope's best k may lie beyond what was fetched: be exact instead
    return hits


def _disable(s: AsyncSession, exc: DBAPIError) -> None:
    detail = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
    key = _key(s.bind.url)
    current = _states.get(key) or KeywordIndexState(METHOD_INDEX, "")
    _states[key] = replace(current, method=METHOD_SQL,
                           reason=f"the pg_textsearch index failed: {detail}")
    log.warning("pg_textsearch search failed, using exact SQL BM25 from now on: %s", detail)


async def keyword_search_info(db: Database, *, enabled: bool = True) -> KeywordSearchInfo:
    """Which keyword ranking ``db`` uses; on PostgreSQL this probes the server again."""
    if db.backend != "postgresql":
        return KeywordSearchInfo("fts5", "SQLite FTS5 with its bm25() ranking")
    async with db.read() as s:
        state = await detect(s, enabled=enabled)
    return KeywordSearchInfo(state.method, state.describe())
