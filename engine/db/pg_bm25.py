"""Okapi BM25 on PostgreSQL, computed in SQL from the GIN-indexed ``tsv`` column.

``ts_rank`` and ``ts_rank_cd`` know nothing of how rare a term is in the collection, and rank
SciFact about ten points of nDCG@10 below BM25. This module scores the real formula:

- the query's lexemes come from PostgreSQL's own parser (``to_tsvector('english', ...)``,
  the same configuration as the ``tsv`` column), and the match is an OR of those lexemes
  built as a quoted ``tsquery`` literal, so user text never reaches the query parser;
- every chunk of the scoped collections that contains a query lexeme is fetched through the
  GIN index; ``setweight`` marks the query lexemes in its ``tsv`` and ``ts_filter`` keeps only
  those, so unnesting yields a few rows per chunk (the term frequencies), not the whole
  vector;
- document frequencies are counted over that same matched set (exact: a chunk without any
  query lexeme contributes to no df), and the collection size and mean chunk length come
  from a small cache refreshed whenever the collection's documents change.

Chunk length is the chunker's ``token_count`` (the tokens FTS5's BM25 also counts) and
``length(tsv)`` for rows without one. Parameters k1 = 1.2, b = 0.75, as in FTS5 and Lucene;
idf is Lucene's ``ln(1 + (N - df + 0.5) / (df + 0.5))``, which stays positive.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import bindparam, text
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.types import Text

from engine.db.fts_query import query_terms
from engine.db.search_filter import DocFilter, doc_conditions, placeholders

K1, B = 1.2, 0.75
DOC_LENGTH = "coalesce(nullif(c.token_count, 0), length(c.tsv))"


@dataclass(frozen=True, slots=True)
class CorpusStats:
    """Size and mean chunk length of the scoped collections, with what they were read at."""

    version: tuple[object, ...]
    chunks: int
    avg_length: float


_stats_cache: dict[tuple[str, tuple[int, ...]], CorpusStats] = {}


def tsquery_literal(lexemes: Sequence[str]) -> str:
    """An OR of quoted lexemes in ``tsquery`` input syntax (quotes and backslashes escaped)."""
    quoted = ("'" + lex.replace("\\", "\\\\").replace("'", "''") + "'" for lex in lexemes)
    return " | ".join(quoted)


async def query_lexemes(s: AsyncSession, query: str) -> list[str]:
    """The normalised lexemes of ``query`` (stemmed, stop words removed), as the index has them."""
    words = " ".join(query_terms(query))
    if not words:
        return []
    lexemes = await s.scalar(text("SELECT tsvector_to_array(to_tsvector('english', :q))"),
                             {"q": words})
    return list(lexemes or [])


async def corpus_stats(s: AsyncSession, collection_ids: Sequence[int]) -> CorpusStats:
    """N and mean chunk length of the collections; re-read only when their documents change."""
    cids, params = placeholders("cid", collection_ids)
    version = tuple((await s.execute(text(
        "SELECT count(*), coalesce(sum(chunk_count), 0), max(indexed_at), max(id) "
        f"FROM documents WHERE collection_id IN ({cids})"), params)).one())
    key = (str(s.bind.url), tuple(sorted(collection_ids)))
    cached = _stats_cache.get(key)
    if cached is not None and cached.version == version:
        return cached
    count, avg = (await s.execute(text(
        f"SELECT count(*), avg({DOC_LENGTH}) FROM chunks c WHERE c.collection_id IN ({cids})"),
        params)).one()
    stats = CorpusStats(version, int(count), float(avg or 1.0))
    _stats_cache[key] = stats
    return stats


async def bm25(s: AsyncSession, collection_ids: Sequence[int], query: str, k: int, *,
               flt: DocFilter | None = None) -> list[tuple[int, float]]:
    """(chunk id, BM25 score, higher is better) of the best ``k`` chunks for ``query``."""
    if not collection_ids:
        return []
    lexemes = await query_lexemes(s, query)
    if not lexemes:
        return []  # only stop words, or no words at all
    stats = await corpus_stats(s, collection_ids)
    cids, params = placeholders("cid", collection_ids)
    doc_join = ""
    if flt:
        cond, fparams = doc_conditions(flt, "postgresql")
        doc_join = f"JOIN documents d ON d.id = tf.document_id AND {cond} "
        params.update(fparams)
    stmt = text(
        "WITH m AS ("
        f" SELECT c.id, c.document_id, {DOC_LENGTH} AS dl,"
        "  ts_filter(setweight(c.tsv, 'A', :lexemes), '{a}') AS qv"
        f" FROM chunks c WHERE c.tsv @@ CAST(:tsq AS tsquery) AND c.collection_id IN ({cids})),"
        " tf AS ("
        " SELECT m.id, m.document_id, m.dl, u.lexeme,"
        "  greatest(coalesce(cardinality(u.positions), 0), 1) AS tf"
        " FROM m CROSS JOIN LATERAL unnest(m.qv) AS u),"
        " df AS (SELECT lexeme, count(*) AS n FROM tf GROUP BY lexeme)"
        " SELECT tf.id, sum(ln(1.0 + (:n - df.n + 0.5) / (df.n + 0.5))"
        "  * tf.tf * (:k1 + 1.0) / (tf.tf + :k1 * (1.0 - :b + :b * tf.dl / :avgdl))) AS score"
        f" FROM tf JOIN df ON df.lexeme = tf.lexeme {doc_join}"
        " GROUP BY tf.id ORDER BY score DESC, tf.id LIMIT :k"
    ).bindparams(bindparam("lexemes", type_=ARRAY(Text)))
    rows = await s.execute(stmt, {
        **params, "lexemes": lexemes, "tsq": tsquery_literal(lexemes), "n": float(stats.chunks),
        "avgdl": max(stats.avg_length, 1.0), "k1": K1, "b": B, "k": int(k)})
    return [(int(cid), float(score)) for cid, score in rows]
