"""Okapi BM25 on PostgreSQL, computed in SQL from the GIN-indexed ``tsv`` column.

``ts_rank`` and ``ts_rank_cd`` know nothing of how rare a term is in the collection, and rank
SciFact about ten points of nDCG@10 below BM25. This module scores the real formula:

- the query's lexemes come from PostgreSQL's own parser (``to_tsvector('english', ...)``,
  the same configuration as the ``tsv`` column), and the match is an OR of those lexemes
  built as a quoted ``tsquery`` literal, so user text never reaches the query parser;
- each matched chunk's term frequencies come from its ``tsv``: ``setweight`` marks the
  query lexemes and ``ts_filter`` keeps only those, so unnesting yields a few rows per chunk;
- the collection size and mean chunk length come from a small cache refreshed whenever the
  collection's documents change.

A common word matches a large part of the collection, and scoring every chunk that holds it
is what made a query slow at a million chunks. So scoring is MaxScore-pruned, and still
exact. PostgreSQL's own statistics of ``chunks.tsv`` (kept by ``ANALYZE``) tell which query
lexemes are common; their document frequencies are counted through the GIN index and cached
until the collections change, and each contributes at most ``idf * (k1 + 1)`` to a chunk.
A first pass scores the chunks that hold a rare lexeme, counting every query lexeme in each
score and the rare lexemes' document frequencies over the matched chunks (every chunk that
holds one is among them). Its k-th best score is a lower bound of the final one, so the most
common lexemes whose bounds add up to no more than it cannot lift a chunk that holds only
them into the top k; a second pass adds the chunks of any common lexeme not so excluded.
Without statistics every lexeme counts as rare: one pass, as exact, only slower. A role
under row-level security (team members; the owner too, under FORCE) cannot read those
statistics, so for it every query lexeme's document frequency is counted over the chunks
it may read (cached too), and the words in more than 5% of them count as common.

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
from engine.db.search_filter import DocFilter, in_scope, placeholders

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
    scope, _ = in_scope("c", collection_ids, None, "postgresql", "cid")
    count, avg = (await s.execute(text(
        f"SELECT count(*), avg({DOC_LENGTH}) FROM chunks c WHERE {scope}"), params)).one()
    stats = CorpusStats(version, int(count), float(avg or 1.0))
    _stats_cache[key] = stats
    return stats


_df_cache: dict[tuple[str, tuple[int, ...], tuple[object, ...], str], int] = {}
_DF_CACHE_MAX = 100_000
COMMON_SHARE = 0.05
"""A lexeme the planner statistics find in more than this share of chunks counts as common."""


async def common_lexemes(s: AsyncSession, lexemes: Sequence[str]) -> set[str]:
    """The query lexemes PostgreSQL's statistics (``ANALYZE`` of ``chunks.tsv``) list as found
    in more than ``COMMON_SHARE`` of the chunks. Only a guide for how to score: without
    statistics every lexeme is treated as rare, which is exact, just slower. Empty for a
    role under row-level security, which ``pg_stats`` hides the statistics from (``bm25``
    counts instead)."""
    rows = await s.execute(text(
        "SELECT e.lexeme FROM pg_stats p, unnest(CAST(CAST(p.most_common_elems AS text) "
        "AS text[]), p.most_common_elem_freqs) AS e(lexeme, freq) "
        "WHERE p.schemaname = current_schema() AND p.tablename = 'chunks' "
        "AND p.attname = 'tsv' AND e.freq > :share AND e.lexeme = ANY(:lexemes)"
    ).bindparams(bindparam("lexemes", type_=ARRAY(Text))),
        {"share": COMMON_SHARE, "lexemes": list(lexemes)})
    return {lex for (lex,) in rows}


_rls_active: dict[str, bool] = {}


async def row_security_active(s: AsyncSession) -> bool:
    """Whether row-level security applies to this role's reads of ``chunks`` (asked once
    per database URL, which names the role)."""
    key = str(s.bind.url)
    if key not in _rls_active:
        _rls_active[key] = bool(await s.scalar(text(
            "SELECT row_security_active(to_regclass('chunks'))")))
    return _rls_active[key]


async def document_frequencies(s: AsyncSession, collection_ids: Sequence[int],
                               stats: CorpusStats, lexemes: Sequence[str]) -> dict[str, int]:
    """How many chunks of the collections contain each lexeme (cached per collection state)."""
    scope = (str(s.bind.url), tuple(sorted(collection_ids)), stats.version)
    out = {lex: _df_cache[(*scope, lex)] for lex in lexemes if (*scope, lex) in _df_cache}
    missing = [lex for lex in lexemes if lex not in out]
    if missing:
        scope, params = in_scope("c", collection_ids, None, "postgresql", "cid")
        rows = await s.execute(text(
            f"SELECT q.lexeme, (SELECT count(*) FROM chunks c WHERE {scope} "
            "AND c.tsv @@ CAST(q.tsq AS tsquery)) "
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
    if await row_security_active(s):
        # PostgreSQL hides the planner statistics of a table under row-level security from
        # the roles it applies to (team members, and the schema owner, held by FORCE), and
        # no function the schema owner can write sees past that. So count how many of the
        # searched chunks hold each word, under the same policies: exact, scoped to what
        # this role may read (a member learns nothing of other users' documents), and cached
        # until the collections change, as the common words' counts always were.
        dfs = await document_frequencies(s, collection_ids, stats, lexemes)
        common = {lex for lex in lexemes if dfs[lex] > COMMON_SHARE * stats.chunks}
    else:
        common = await common_lexemes(s, lexemes)
        dfs = await document_frequencies(s, collection_ids, stats, sorted(common))
    common_order = sorted((lex for lex in common if dfs[lex]), key=lambda lex: (-dfs[lex], lex))
    rare = [lex for lex in lexemes if lex not in common]
    if not rare:  # only common words: score the chunks of the least common one first
        rare, common_order = common_order[-1:], common_order[:-1]
    if not rare:
        return []  # no chunk holds any of the words
    weights = {lex: idf(stats.chunks, dfs[lex]) for lex in common_order}
    score = _Scorer(s, collection_ids, stats, rare, weights, k, flt)

    hits = await score([])  # pass 1: the chunks that hold a rare lexeme
    if not common_order:
        return hits
    # The most common lexemes whose bounds add up to at most the k-th score cannot make a
    # chunk that holds only them (and none of the rest) a top-k hit.
    floor = hits[-1][1] if len(hits) >= k else 0.0
    excluded, total = 0, 0.0
    for lex in common_order:  # most common first
        bound = weights[lex] * (K1 + 1.0)
        if total + bound > floor:
            break
        total += bound
        excluded += 1
    needed = common_order[excluded:]
    if not needed:
        return hits  # pass 1 already scored every chunk that can be in the top k
    return await score(needed)  # pass 2: and the chunks of the common lexemes still needed


class _Scorer:
    """Scores chunks that hold some of the query lexemes, counting every query lexeme.

    The document frequency of a rare lexeme is counted in the same statement, over the
    matched chunks (which include every chunk holding it); common lexemes come with their
    idf, from counts cached in ``document_frequencies``.
    """

    def __init__(self, s: AsyncSession, collection_ids: Sequence[int], stats: CorpusStats,
                 rare: Sequence[str], common: dict[str, float], k: int,
                 flt: DocFilter | None) -> None:
        self.s, self.rare = s, list(rare)
        scope, self.params = in_scope("c", collection_ids, None, "postgresql", "cid")
        doc_where = ""
        if flt:
            # The filter applies after the rare lexemes' frequencies are counted over the
            # whole scope, as without it.
            cond, fparams = in_scope("tf", collection_ids, flt, "postgresql", "fcid")
            doc_where = f"WHERE {cond} "
            self.params.update(fparams)
        self.params.update({"lexemes": [*rare, *common], "rare": self.rare,
                            "common": list(common), "idfs": list(common.values()),
                            "n": float(stats.chunks), "avgdl": max(stats.avg_length, 1.0),
                            "k1": K1, "b": B, "k": int(k)})
        self.stmt = text(
            "WITH m AS ("
            f" SELECT c.id, c.chunk_set_id, {DOC_LENGTH} AS dl,"
            "  ts_filter(setweight(c.tsv, 'A', :lexemes), '{a}') AS qv"
            f" FROM chunks c WHERE c.tsv @@ CAST(:tsq AS tsquery)"
            f" AND {scope}),"
            " tf AS ("
            " SELECT m.id, m.chunk_set_id, m.dl, u.lexeme,"
            "  greatest(coalesce(cardinality(u.positions), 0), 1) AS tf"
            " FROM m CROSS JOIN LATERAL unnest(m.qv) AS u),"
            " w AS ("
            " SELECT lexeme, ln(1.0 + (:n - count(*) + 0.5) / (count(*) + 0.5)) AS idf"
            " FROM tf WHERE lexeme = ANY(:rare) GROUP BY lexeme"
            " UNION ALL SELECT * FROM unnest(CAST(:common AS text[]), CAST(:idfs AS float8[])))"
            " SELECT tf.id, sum(w.idf"
            "  * tf.tf * (:k1 + 1.0) / (tf.tf + :k1 * (1.0 - :b + :b * tf.dl / :avgdl))) AS score"
            f" FROM tf JOIN w ON w.lexeme = tf.lexeme {doc_where}"
            " GROUP BY tf.id ORDER BY score DESC, tf.id LIMIT :k"
        ).bindparams(bindparam("lexemes", type_=ARRAY(Text)), bindparam("rare", type_=ARRAY(Text)),
                     bindparam("common", type_=ARRAY(Text)))

    async def __call__(self, common: Sequence[str]) -> list[tuple[int, float]]:
        """The best chunks among those holding a rare lexeme or one of ``common``."""
        tsq = tsquery_literal([*self.rare, *common])
        rows = await self.s.execute(self.stmt, {**self.params, "tsq": tsq})
        return [(int(cid), float(score)) for cid, score in rows]
