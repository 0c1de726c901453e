"""``parley db check``: is this database whole, and do its derived indexes agree with it?

Checks (each names what repairs it): SQLite's ``integrity_check``; the FTS5 index against
the chunks (``integrity-check``); each collection generation's vector index (vec0 table, or
PostgreSQL's partial HNSW index) exists and holds exactly that generation's vectors; the
live generation has a vector for every chunk; no vector without its chunk; no citation
pointing at a chunk or document that is gone (instead of being marked, i.e. cleared); the
user's key check value (``user_keys``) opens with the current key; no unfinished
``db copy`` into it. On PostgreSQL the owner checks every user's rows; a member checks
what row-level security shows them, and the report's ``scope`` says so.
``repair`` rebuilds what is derived (FTS5, vector indexes) and clears what is dangling;
it never touches chat history or documents.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, exists, func, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.db import models as m
from engine.db.connect import Database, mask_url
from engine.db.search_backend import for_backend
from engine.keys import crypto
from engine.portable.access import access
from engine.portable.results import CheckProblem, CheckReport
from engine.portable.target import KeyCandidates
from engine.teams import rls

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
            # a collection's chunks are those of its documents' chunk sets
            chunks = int(await conn.scalar(select(func.count(func.distinct(m.Chunk.id)))
                                           .select_from(m.Chunk)
                                           .join(m.Document, m.Document.chunk_set_id ==
                                                 m.Chunk.chunk_set_id)
                                           .where(m.Document.collection_id == cid)) or 0)
            if chunks != stored:
                problems.append(CheckProblem(
                    "missing vectors", f"{label}: {chunks} chunks but {stored} vectors",
                    f"parley reindex --embed --force --collection {name}"))


async def _reference_checks(conn: AsyncConnection, problems: list[CheckProblem],
                            checks: list[str], sees_all: bool) -> None:
    checks.append("vectors belong to chunks")
    orphans = int(await conn.scalar(select(func.count()).select_from(m.ChunkEmbedding).where(
        ~exists().where(m.Chunk.id == m.ChunkEmbedding.chunk_id))) or 0)
    if orphans:
        problems.append(CheckProblem("orphan vectors", f"{orphans} vectors belong to no chunk",
                                     REPAIR))
    if not sees_all:
        # a citation of a collection no longer shared with this member points at a row
        # they cannot see, not at one that is gone (foreign keys guarantee that here)
        checks.append("citations: skipped (rows of collections not shared with you are "
                      "invisible, not missing)")
        return
    checks.append("citations point at existing chunks and documents")
    for col, table in ((m.Citation.chunk_id, m.Chunk), (m.Citation.document_id, m.Document)):
        dangling = int(await conn.scalar(select(func.count()).select_from(m.Citation).where(
            col.is_not(None), ~exists().where(table.id == col))) or 0)
        if dangling:
            problems.append(CheckProblem(
                "dangling citations", f"{dangling} citations point at a {table.__tablename__[:-1]} "
                "that is gone (not marked as removed)", REPAIR))


async def _copy_checks(conn: AsyncConnection, problems: list[CheckProblem],
                       checks: list[str], sees_all: bool) -> None:
    # a member's copy state is their own (row-level security): they check their copies
    checks.append("no unfinished copy" + ("" if sees_all else " of yours"))
    unfinished = int(await conn.scalar(select(func.count(func.distinct(m.CopyState.copy_id)))
                                       .where(m.CopyState.done.is_(False))) or 0)
    if unfinished:
        problems.append(CheckProblem("unfinished copy", f"{unfinished} parley db copy into this "
                                     "database did not finish", "run the same parley db copy "
                                     "command again (it resumes)"))


async def _key_check(conn: AsyncConnection, keys_for: KeyCandidates, user: str,
                     problems: list[CheckProblem], checks: list[str]) -> None:
    checks.append(f"user '{user}': the key check value opens with the current key")
    row = (await conn.execute(select(m.UserKey.key_check, m.UserKey.kdf_salt).join(
        m.User, m.User.id == m.UserKey.user_id).where(m.User.name == user))).first()
    if row is None or row[0] is None:
        return
    value, keys = row[0], keys_for(row[1])
    if not keys:
        problems.append(CheckProblem("key", "no encryption key is available",
                                     "restore your key file, or set $PARLEY_KEY"))
    elif not any(crypto.key_matches(k, value) for k in keys):
        problems.append(CheckProblem("key", "the current key does not open this database",
                                     "use the key this database was created with "
                                     "(parley key status)"))


async def check(db: Database, keys_for: KeyCandidates, user: str) -> CheckReport:
    """``db`` from ``access.open_database``: on PostgreSQL the owner checks every user's
    rows, a member what row-level security shows them (and the report says so)."""
    problems: list[CheckProblem] = []
    checks: list[str] = []
    scope = "the whole database"
    try:
        async with db.engine.connect() as conn:
            who = await access(conn)
            scope = who.describe()
            if db.backend == "sqlite":
                await _sqlite_checks(conn, problems, checks)
            await _vector_checks(conn, db.backend, problems, checks)
            await _reference_checks(conn, problems, checks, who.sees_all)
            await _copy_checks(conn, problems, checks, who.sees_all)
            await _key_check(conn, keys_for, who.role or user, problems, checks)
    except Exception as exc:  # a damaged file fails before any check can name it
        problems.append(CheckProblem("unreadable", str(exc).splitlines()[0][:200],
                                     "restore a backup (parley restore)"))
    return CheckReport(db.backend, mask_url(str(db.engine.url)), checks, problems, scope)


async def repair(db: Database) -> list[str]:
    """Rebuild what is derived and clear what dangles; returns what was done."""
    done: list[str] = []
    # vector indexes first: a dropped vec0 table leaves triggers that fail every delete
    async with db.engine.connect() as conn:
        generations = await _generations(conn)
        sees_all = (await access(conn)).sees_all
    search = for_backend(db.backend)
    rebuilt = 0
    for cid, name, gen, dim, _live in generations:
        try:
            async with db.write() as s:
                if sees_all:
                    await search.drop_vector_index(s, cid, gen)
                    await search.create_vector_index(s, cid, gen, dim)
                else:  # a member: as the collection's writers may
                    await rls.vector_index(s, db.backend, cid, gen, None)
                    await rls.vector_index(s, db.backend, cid, gen, dim)
            rebuilt += 1
        except DBAPIError as exc:
            if "42501" not in str(getattr(exc.orig, "sqlstate", "")) and \
                    "may not change" not in str(exc):
                raise
            done.append(f"skipped collection '{name}': shared with you read-only")
    if rebuilt:
        done.append(f"rebuilt {rebuilt} vector indexes")
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
            if not sees_all:  # what a member cannot see is not gone
                break
            marked = await s.execute(update(m.Citation).where(
                col.is_not(None), ~exists().where(table.id == col)).values({col.key: None}))
            if marked.rowcount:
                done.append(f"marked {marked.rowcount} citations whose "
                            f"{table.__tablename__[:-1]} is gone")
    return done


def as_dict(report: CheckReport) -> dict[str, Any]:
    return {"ok": report.ok, "backend": report.backend, "url": report.url,
            "scope": report.scope, "checks": report.checks,
            "problems": [{"check": p.check, "detail": p.detail, "repair": p.repair}
                         for p in report.problems]}
