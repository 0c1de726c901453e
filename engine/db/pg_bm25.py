"""Okapi BM25 on PostgreSQL, computed in SQL from the GIN-indexed ``tsv`` column.

``ts_rank`` and ``ts_rank_cd`` know nothing of how rare a term is in the collection, and rank
SciFact about ten points of nDCG@10 below BM25. This module scores the real formula:

- the query's lexemes come from PostgreSQL's own parser (``to_tsvector('english', ...)``,
  the same configuration as the ``tsv`` column), and the match is an OR of those lexemes
  built as a quoted ``tsquery`` literal, so user text never reaches the query parser;
- document frequencies are counted once per lexeme through the GIN index and cached until
  the collections' documents change, like the collection size and mean chunk length;
- each candidate chunk's term frequencies come from its ``tsv``: ``setweight`` marks the
  query lexemes and ``ts_filter`` keeps only those, so unnesting yields a few rows per chunk.

A common word matches a large part of the collection, and scoring every such chunk is what
made a query slow at a million chunks. So the scoring is MaxScore-pruned, and still exact: a
lexeme contributes at most ``idf * (k1 + 1)`` to any chunk. A first pass scores only the
chunks that contain one of the rarer lexemes (all query lexemes counted in each score); its
k-th best score is a lower bound of the final one, so the most common lexemes whose upper
bounds add up to no more than it cannot lift a chunk that has only them into the top k. A
second pass, when the first could not prove that for every lexeme it left out, scores the
chunks that contain any lexeme not so excluded.

Chunk length is the chunker's ``token_count`` (the tokens FTS5's BM25 also counts) and
``length(tsv)`` for rows without one. Parameters k1 = 1.2, b = 0.75, as in FTS5 and Lucene;
idf is Lucene's ``ln(1 + (N - df + 0.5) / (df + 0.5))``, which stays positive.
"""

from __future__ import annotations

import math
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


_df_cache: dict[tuple[str, tuple[int, ...], tuple[object, ...], str], int] = {}
_DF_CACHE_MAX = 100_000
FIRST_PASS_SHARE = 0.05
"""The first pass scores the chunks of lexemes found in at most this share of the chunks."""


async def document_frequencies(s: AsyncSession, collection_ids: Sequence[int],
                               stats: CorpusStats, lexemes: Sequence[str]) -> dict[str, int]:
    """How many chunks of the collections contain each lexeme (cached per collection state)."""
    scope = (str(s.bind.url), tuple(sorted(collection_ids)), stats.version)
    out = {lex: _df_cache[(*scope, lex)] for lex in lexemes if (*scope, lex) in _df_cache}
    missing = [lex for lex in lexemes if lex not in out]
    if missing:
        cids, params = placeholders("cid", collection_ids)
        rows = await s.execute(text(
            "SELECT q.lexeme, (SELECT count(*) FROM chunks c WHERE c.collection_id IN "
            f"({cids}) AND c.tsv @@ CAST(q.tsq AS tsquery)) "
            "FROM unnest(CAST(:lexemes AS text[]), CAST(:tsqs AS text[])) AS q(lexeme, tsq)"
        ).bindparams(bindparam("lexemes", type_=ARRAY(Text)),
                     bindparam("tsqs", type_=ARRAY(Text))),
            {**params, "lexemes": missing, "tsqs": [tsquery_literal([lex]) for lex in missing]})
        if len(_df_cache) + len(missing) > _DF_CACHE_MAX:
            _df_cache.clear()
        for lex, df in rows:
            out[lex] = _df_cache[(*scope, lex)] = int(df)
    return out


def idf(n: int, df: int) -> float:
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))


async def bm25(s: AsyncSession, collection_ids: Sequence[int], query: str, k: int, *,
               flt: DocFilter | None = None) -> list[tuple[int, float]]:
    """(chunk id, BM25 score, higher is better) of the best ``k`` chunks for ``query``."""
    if not collection_ids or k <= 0:
        return []
    lexemes = await query_lexemes(s, query)
    if not lexemes:
        return []  # only stop words, or no words at all
    stats = await corpus_stats(s, collection_ids)
    dfs = await document_frequencies(s, collection_ids, stats, lexemes)
    present = sorted((lex for lex in lexemes if dfs[lex]), key=lambda lex: (dfs[lex], lex))
    if not present:
        return []
    weights = {lex: idf(stats.chunks, dfs[lex]) for lex in present}
    bound = {lex: weights[lex] * (K1 + 1.0) for lex in present}
    score = _Scorer(s, collection_ids, stats, weights, k, flt)

    # Pass 1: the rarest lexeme and any others found in few chunks.
    rare = [lex for i, lex in enumerate(present)
            if i == 0 or dfs[lex] <= FIRST_PASS_SHARE * stats.chunks]
    hits = await score(rare)
    if len(rare) == len(present):
        return hits
    # The most common lexemes whose bounds add up to at most the k-th score cannot make a
    # chunk that contains only them (and none of the rest) a top-k hit.
    floor = hits[-1][1] if len(hits) >= k else 0.0
    excluded, total = 0, 0.0
    for lex in reversed(present):
        if total + bound[lex] > floor:
            break
        total += bound[lex]
        excluded += 1
    needed = present[:len(present) - excluded]
    if len(needed) <= len(rare):
        return hits  # pass 1 already scored every chunk that can be in the top k
    return await score(needed)


class _Scorer:
    """Scores the chunks that contain any of some lexemes, counting every query lexeme."""

    def __init__(self, s: AsyncSession, collection_ids: Sequence[int], stats: CorpusStats,
                 weights: dict[str, float], k: int, flt: DocFilter | None) -> None:
        self.s, self.k, self.weights = s, k, weights
        cids, self.params = placeholders("cid", collection_ids)
        doc_join = ""
        if flt:
            cond, fparams = doc_conditions(flt, "postgresql")
            doc_join = f"JOIN documents d ON d.id = tf.document_id AND {cond} "
            self.params.update(fparams)
        self.params.update({"lexemes": list(weights), "idfs": list(weights.values()),
                            "avgdl": max(stats.avg_length, 1.0), "k1": K1, "b": B,
                            "k": int(k)})
        self.stmt = text(
            "WITH w AS (SELECT * FROM unnest(CAST(:lexemes AS text[]),"
            "  CAST(:idfs AS float8[])) AS w(lexeme, idf)),"
            " m AS ("
            f" SELECT c.id, c.document_id, {DOC_LENGTH} AS dl,"
            "  ts_filter(setweight(c.tsv, 'A', CAST(:lexemes AS text[])), '{a}') AS qv"
            f" FROM chunks c WHERE c.tsv @@ CAST(:tsq AS tsquery)"
            f" AND c.collection_id IN ({cids})),"
            " tf AS ("
            " SELECT m.id, m.document_id, m.dl, u.lexeme,"
            "  greatest(coalesce(cardinality(u.positions), 0), 1) AS tf"
            " FROM m CROSS JOIN LATERAL unnest(m.qv) AS u)"
            " SELECT tf.id, sum(w.idf"
            "  * tf.tf * (:k1 + 1.0) / (tf.tf + :k1 * (1.0 - :b + :b * tf.dl / :avgdl))) AS score"
            f" FROM tf JOIN w ON w.lexeme = tf.lexeme {doc_join}"
            " GROUP BY tf.id ORDER BY score DESC, tf.id LIMIT :k"
        ).bindparams(bindparam("lexemes", type_=ARRAY(Text)))

    async def __call__(self, matching: Sequence[str]) -> list[tuple[int, float]]:
        rows = await self.s.execute(self.stmt, {**self.params,
                                                "tsq": tsquery_literal(matching)})
        return [(int(cid), float(score)) for cid, score in rows]
