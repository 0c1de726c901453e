"""``parley db check``: is this database whole, and do its derived indexes agree with it?

Checks (each names what repairs it): SQLite's ``integrity_check``; the FTS5 index against
the chunks (``integrity-check``); each collection generation's vector index (vec0 table, or
PostgreSQL's partial HNSW index) exists and holds exactly that generation's vectors; the
live generation has a vector for every chunk; no vector without its chunk; no citation
pointing at a chunk or document that is gone (instead of being marked, i.e. cleared); the
key check value opens with the current key; no unfinished ``db copy`` into it.
``repair`` rebuilds what is derived (FTS5, vector indexes) and clears what is dangling;
it never touches chat history or documents.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.db import models as m
from engine.db.connect import Database, mask_url
from engine.db.search_backend import for_backend
from engine.keys import crypto
from engine.portable.results import CheckProblem, CheckReport

REPAIR = "parley db check --repair"


async def _generations(conn: AsyncConnection) -> list[tuple[int, str, int, int, bool]]:
    """(collection id, name, generation, dimension, live) of every generation in use."""
    out = []
    for c in (await conn.execute(select(m.Collection.__table__))).mappings():
        out.append((c["id"], c["name"], c["vector_generation"], c["dimension"], True))
        if c["pending_dimension"]:
            out.append((c["id"], c["name"], c["vector_generation"] + 1,
                        c["pending_dimension"], False))
    return out


async def _sqlite_checks(conn: AsyncConnection, problems: list[CheckProblem],
                         checks: list[str]) -> None:
    checks.append("sqlite integrity_check")
    rows = [r[0] for r in (await conn.execute(text("PRAGMA integrity_check"))).all()]
    if rows != ["ok"]:
        problems.append(CheckProblem("sqlite integrity", "; ".join(rows[:3]),
                                     "the file is damaged: restore a backup (parley restore), "
                                     "or salvage what reads with parley db copy --to NEW"))
    checks.append("fts5 integrity-check")
    try:
        await conn.execute(text(
            "INSERT INTO chunk_fts(chunk_fts, rank) VALUES('integrity-check', 1)"))
    except Exception as exc:
        problems.append(CheckProblem("keyword index", "the FTS5 index does not match the "
                                     f"chunks ({str(exc).splitlines()[0][:120]})", REPAIR))


async def _vector_checks(conn: AsyncConnection, backend: str,
                         problems: list[CheckProblem], checks: list[str]) -> None:
    from engine.db import pg_search, sqlite_search

    checks.append("vector indexes")
    for cid, name, gen, _dim, live in await _generations(conn):
        stored = int(await conn.scalar(select(func.count()).select_from(m.ChunkEmbedding).where(
            m.ChunkEmbedding.collection_id == cid, m.ChunkEmbedding.generation == gen)) or 0)
        label = f"collection '{name}' generation {gen}"
        if backend == "sqlite":
            table = sqlite_search.vec_table(cid, gen)
            found = await conn.scalar(text(
                "SELECT 1 FROM sqlite_master WHERE name = :n"), {"n": table})
            indexed = int(await conn.scalar(text(f"SELECT count(*) FROM {table}")) or 0) \
                if found else None
        else:
            found = await conn.scalar(text("SELECT 1 FROM pg_indexes WHERE indexname = :n"),
                                      {"n": pg_search.index_name(cid, gen)})
            indexed = stored if found else None
        if indexed is None:
            problems.append(CheckProblem("vector index", f"{label} has no vector index",
                                         REPAIR))
        elif indexed != stored:
            problems.append(CheckProblem("vector index", f"{label}: the vector index holds "
                                         f"{indexed} vectors, the table {stored}", REPAIR))
        if live:
            chunks = int(await conn.scalar(select(func.count()).select_from(m.Chunk).where(
                m.Chunk.collection_id == cid)) or 0)
            if chunks != stored:
                problems.append(CheckProblem(
                    "missing vectors", f"{label}: {chunks} chunks but {stored} vectors",
                    f"parley reindex --embed --force --collection {name}"))


async def _reference_checks(conn: AsyncConnection, problems: list[CheckProblem],
                            checks: list[str]) -> None:
    checks.append("vectors belong to chunks")
    orphans = int(await conn.scalar(select(func.count()).select_from(m.ChunkEmbedding).where(
        ~exists().where(m.Chunk.id == m.ChunkEmbedding.chunk_id))) or 0)
    if orphans:
        problems.append(CheckProblem("orphan vectors", f"{orphans} vectors belong to no chunk",
                                     REPAIR))
    checks.append("citations point at existing chunks and documents")
    for col, table in ((m.Citation.chunk_id, m.Chunk), (m.Citation.document_id, m.Document)):
        dangling = int(await conn.scalar(select(func.count()).select_from(m.Citation).where(
            col.is_not(None), ~exists().where(table.id == col))) or 0)
        if dangling:
            problems.append(CheckProblem(
                "dangling citations", f"{dangling} citations point at a {table.__tablename__[:-1]} "
                "that is gone (not marked as removed)", REPAIR))
    checks.append("no unfinished copy")
    unfinished = int(await conn.scalar(select(func.count(func.distinct(m.CopyState.copy_id)))
                                       .where(m.CopyState.done.is_(False))) or 0)
    if unfinished:
        problems.append(CheckProblem("unfinished copy", f"{unfinished} parley db copy into this "
                                     "database did not finish", "run the same parley db copy "
                                     "command again (it resumes)"))


async def _key_check(conn: AsyncConnection, keys: list[bytes] | None,
                     problems: list[CheckProblem], checks: list[str]) -> None:
    checks.append("the key check value opens with the current key")
    value = await conn.scalar(select(m.Meta.value).where(m.Meta.key == crypto.META_KEY_CHECK))
    if value is None:
        return
    if not keys:
        problems.append(CheckProblem("key", "no encryption key is available",
                                     "restore your key file, or set $PARLEY_KEY"))
    elif not any(crypto.key_matches(k, value) for k in keys):
        problems.append(CheckProblem("key", "the current key does not open this database",
                                     "use the key this database was created with "
                                     "(parley key status)"))


async def check(db: Database, keys: list[bytes] | None) -> CheckReport:
    problems: list[CheckProblem] = []
    checks: list[str] = []
    try:
        async with db.engine.connect() as conn:
            if db.backend == "sqlite":
                await _sqlite_checks(conn, problems, checks)
            await _vector_checks(conn, db.backend, problems, checks)
            await _reference_checks(conn, problems, checks)
            await _key_check(conn, keys, problems, checks)
    except Exception as exc:  # a damaged file fails before any check can name it
        problems.append(CheckProblem("unreadable", str(exc).splitlines()[0][:200],
                                     "restore a backup (parley restore)"))
    return CheckReport(db.backend, mask_url(str(db.engine.url)), checks, problems)


async def repair(db: Database) -> list[str]:
    """Rebuild what is derived and clear what dangles; returns what was done."""
    done: list[str] = []
    search = for_backend(db.backend)
    # vector indexes first: a dropped vec0 table leaves triggers that fail every delete
    async with db.engine.connect() as conn:
        generations = await _generations(conn)
    for cid, _name, gen, dim, _live in generations:
        async with db.write() as s:
            await search.drop_vector_index(s, cid, gen)
            await search.create_vector_index(s, cid, gen, dim)
    if generations:
        done.append(f"rebuilt {len(generations)} vector indexes")
    async with db.write() as s:
        if db.backend == "sqlite":
            await s.execute(text("INSERT INTO chunk_fts(chunk_fts) VALUES('rebuild')"))
            done.append("rebuilt the keyword index")
        gone = await s.execute(delete(m.ChunkEmbedding).where(
            ~exists().where(m.Chunk.id == m.ChunkEmbedding.chunk_id)))
        if gone.rowcount:
            done.append(f"removed {gone.rowcount} vectors without a chunk")
        for col, table in ((m.Citation.chunk_id, m.Chunk),
                           (m.Citation.document_id, m.Document)):
            marked = await s.execute(update(m.Citation).where(
                col.is_not(None), ~exists().where(table.id == col)).values({col.key: None}))
            if marked.rowcount:
                done.append(f"marked {marked.rowcount} citations whose "
                            f"{table.__tablename__[:-1]} is gone")
    return done


def as_dict(report: CheckReport) -> dict[str, Any]:
    return {"ok": report.ok, "backend": report.backend, "url": report.url,
            "checks": report.checks,
            "problems": [{"check": p.check, "detail": p.detail, "repair": p.repair}
                         for p in report.problems]}
