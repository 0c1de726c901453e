"""A populated Parley database for the copy, backup and check tests, and ways to compare
two databases by content.

``populate`` writes, through the engine (so values are really encrypted): two collections
with different embedders and dimensions (one embedded with the bundled model, so search
works), a re-embed of the second in progress (generation 2 half written, its index
created), tags, sessions with a branch, citations (one whose chunk is gone), token usage,
an ingestion run with JSON columns and audit rows, a persona, an attachment, a model's
cached facts and session settings; and a second user's session.
"""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import select, text, update

from engine import Engine, Settings, load_settings
from engine.db import models as m
from engine.db.connect import Database, create_engine
from engine.portable.plan import build_plans, row_digest
from engine.teams import rls
from tests.engine.test_retrieval import CORPUS, add_collection
from tests.support.cli import real_cli as _real_cli
from tests.support.cli import run_cli

REPO = Path(__file__).resolve().parents[2]


def settings_for(url: str, user: str | None = None) -> Settings:
    overrides: dict[str, Any] = {"database": {"url": url}}
    if user:
        overrides["user"] = user
    return load_settings(overrides=overrides)


async def _tiny_collection(engine: Engine, rng: np.random.Generator, user_id: int) -> None:
    assert engine.db is not None
    backend = engine.db.backend
    async with engine.db.write() as s:
        coll = m.Collection(user_id=user_id, name="tiny", embedder="fake-8", dimension=8,
                            pending_embedder="fake-16", pending_dimension=16)
        s.add(coll)
        await s.flush()
        # as a team member may: through the function that checks write access
        await rls.vector_index(s, backend, coll.id, 1, 8)
        await rls.vector_index(s, backend, coll.id, 2, 16)
        chunk_set = m.ChunkSet(user_id=user_id, created_by=engine.user_id,
                               content_hash="t" * 64, suffix=".txt", chunk_count=4)
        s.add(chunk_set)
        await s.flush()
        doc = m.Document(user_id=user_id, collection_id=coll.id, source_path="/t/a.txt",
                         path_hash="t" * 64, kind="text", chunk_count=4, size=40,
                         title="Tiny ünïcødé", chunk_set_id=chunk_set.id)
        s.add(doc)
        await s.flush()
        s.add(m.DocumentTag(document_id=doc.id, tag="small"))
        for i in range(4):
            chunk = m.Chunk(user_id=user_id, chunk_set_id=chunk_set.id, chunk_index=i, text=f"tiny chunk {i} zebra", content_hash=f"h{i}",
                            char_start=0, char_end=10, line_start=i + 1, line_end=i + 1)
            s.add(chunk)
            await s.flush()
            s.add(m.ChunkEmbedding(chunk_id=chunk.id, generation=1, collection_id=coll.id,
                                   embedding=rng.standard_normal(8).astype(np.float32)))
            if i < 2:  # the re-embed is half done
                s.add(m.ChunkEmbedding(chunk_id=chunk.id, generation=2, collection_id=coll.id,
                                       embedding=rng.standard_normal(16).astype(np.float32)))


async def populate(url: str, *, second_user: bool = True, user: str | None = None,
                   other_user: str = "bob") -> None:
    """Fill the (migrated or empty) database at ``url``; see the module docstring.

    ``user``: the first user's name (SQLite; on PostgreSQL it is the role of ``url``).
    ``other_user``: the second user's name, or on PostgreSQL the URL of that member's role."""
    from tests.conftest import migrate

    rng = np.random.default_rng(7)
    await migrate(settings_for(url))  # PostgreSQL is never upgraded on open
    async with Engine(settings_for(url, user)) as engine:
        assert engine.db is not None
        await add_collection(engine, "notes", CORPUS)
        await _tiny_collection(engine, rng, engine.user_id)
        store = engine.sessions
        first = await store.create("Battery questions", model="m1", provider="p",
                                   system_prompt="Be brief", collections=["notes"])
        q = await store.add_message(first.id, "user", "How long is the warranty?")
        a = await store.add_message(first.id, "assistant", "Two years [1].", model="m1")
        # a branch: another answer to the same question, then back to the first
        await store.add_message(first.id, "assistant", "24 months.", parent_id=q.id)
        await store.add_message(first.id, "user", "Thanks ✓", parent_id=a.id)
        second = await store.create("Empty one")
        async with engine.db.write() as s:
            chunk = (await s.execute(select(m.Chunk).where(
                m.Chunk.text.like("%warranty%")))).scalars().first()
            assert chunk is not None
            s.add(m.Citation(user_id=engine.user_id, message_id=a.id, chunk_id=chunk.id,
                             document_id=await s.scalar(select(m.Document.id).where(
                                 m.Document.chunk_set_id == chunk.chunk_set_id).limit(1)),
                             marker=1, position=12,
                             path="/manuals/warranty.pdf", page=3, line_start=1, line_end=1,
                             score=0.91, snippet="The warranty covers battery"))
            s.add(m.Citation(user_id=engine.user_id, message_id=a.id, chunk_id=None,
                             document_id=None, marker=2, path="/gone.md", snippet="removed"))
            for i, (kind, sess) in enumerate([("chat", first.id), ("embedding", None),
                                              ("chat", second.id)]):
                s.add(m.TokenUsage(user_id=engine.user_id, session_id=sess,
                                   message_id=a.id if i == 0 else None, kind=kind,
                                   provider="p", model="m1", prompt_tokens=100 + i,
                                   completion_tokens=20 * i, embedding_tokens=5,
                                   estimated=bool(i % 2), cost=0.0012 * (i + 1),
                                   latency_ms=12.5, first_token_ms=3.25))
            s.add(m.IngestionRun(user_id=engine.user_id, target=["/notes", "/manuals"],
                                 options={"recursive": True, "tags": ["a", "b"], "n": 1.5},
                                 status="done", files_seen=6, indexed=6,
                                 errors=[{"path": "/x", "error": "bad \"quote\""}]))
            s.add(m.AuditLog(user_id=engine.user_id, actor="me", action="test.populate",
                             target="everything", detail={"k": [1, 2, {"z": None}]}))
            # the chat setup's tables (a later revision): copied with no code of their own
            s.add(m.Persona(user_id=engine.user_id, name="terse", model="m1",
                            system_prompt="Answer in one line", collections=["notes"],
                            rag=True, params={"temperature": 0.2}, first_message="Hi ✓",
                            tools=["parley.search", "files.*"]))
            s.add(m.Attachment(user_id=engine.user_id, message_id=q.id, position=0,
                               path="/tmp/receipt.txt", kind="text",
                               text="Bought on 2026-01-02", pages=[[1, 0, 20]]))
            if await s.get(m.ModelInfo, ("p", "m1")) is None:  # shared by every user
                s.add(m.ModelInfo(provider="p", model="m1", base_url="http://127.0.0.1:1/v1",
                                  context_window=8192, source="test"))
            await s.execute(update(m.Session).where(m.Session.id == first.id).values(
                rag=False, params={"top_k": 3}, tools=["parley.*"], tools_persona="terse"))
    if second_user:
        other = settings_for(other_user) if "://" in other_user else \
            settings_for(url, other_user)
        async with Engine(other) as bob:
            other = await bob.sessions.create("Bob's secrets")
            await bob.sessions.add_message(other.id, "user", "bob's question")


async def table_digests(url: str) -> dict[str, tuple[int, str]]:
    """Every copied table's row count and a digest of its content in key order, plus the
    key check value: what 'equal to the original' means."""
    db = Database(create_engine(url))
    out: dict[str, tuple[int, str]] = {}
    try:
        async with db.engine.connect() as conn:
            for plan in build_plans():
                h = hashlib.sha256()
                n = 0
                result = await conn.execute(select(*(plan.table.c[c] for c in plan.columns))
                                            .order_by(*plan.pk_cols()))
                for row in result.mappings():
                    h.update(row_digest(dict(row), plan.columns))
                    n += 1
                out[plan.name] = (n, h.hexdigest())
            meta = dict((await conn.execute(select(m.Meta.key, m.Meta.value))).all())
            meta.pop("last_backup", None)  # describes that database file, never travels
            out["parley_meta"] = (len(meta), meta.get("key_check", ""))
    finally:
        await db.dispose()
    return out


def role_name(short: str) -> str:
    """A role name no other test uses (roles are shared by the whole server)."""
    return f"{short}_{uuid.uuid4().hex[:8]}"


async def add_member(url: str, role: str) -> str:
    """A login role holding ``parley_member`` with its user row in the migrated database at
    ``url`` (made as the superuser, as ``parley team add`` would); returns its URL."""
    import asyncpg
    from sqlalchemy.engine import make_url

    conn = await asyncpg.connect(make_url(url).set(drivername="postgresql")
                                 .render_as_string(hide_password=False))
    try:
        if not await conn.fetchval("SELECT 1 FROM pg_roles WHERE rolname = $1", role):
            await conn.execute(f'CREATE ROLE "{role}" LOGIN')
        await conn.execute(f'GRANT parley_member TO "{role}"')
        if not await conn.fetchval("SELECT 1 FROM users WHERE name = $1", role):
            await conn.execute("INSERT INTO users (name, created_at) VALUES ($1, now())", role)
    finally:
        await conn.close()
    return make_url(url).set(username=role, password=None).render_as_string(
        hide_password=False)


def cli(*args: str, url: str | None = None, stdin: str | None = None,
        env_extra: dict[str, str] | None = None,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``parley ARGS`` run in this process (``tests.support.cli.run_cli``), with this
    test's PARLEY_HOME: for the steps whose point is their result."""
    prefix = ["--db", url] if url else []
    return run_cli(*prefix, *args, env=env_extra, stdin=stdin, timeout=timeout)


def real_cli(*args: str, url: str | None = None, stdin: str | None = None,
             env_extra: dict[str, str] | None = None,
             timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """The same as ``cli`` through the real ``python -m tui.cli`` in a subprocess: for
    what a user meets as a process (a first error exit, a resume after a kill)."""
    prefix = ["--db", url] if url else []
    return _real_cli(*prefix, *args, env=env_extra, stdin=stdin, timeout=timeout)


async def vector_indexes(url: str, *, full_precision_only: bool = False) -> int:
    """How many vector indexes the database at ``url`` holds: PostgreSQL's HNSW indexes;
    SQLite's vec0 tables, with ``full_precision_only`` without the binary-quantised
    ``*_bit`` companions."""
    db = Database(create_engine(url))
    try:
        async with db.engine.connect() as conn:
            if db.backend == "postgresql":
                sql = "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'ix_vec_c%'"
            else:
                sql = ("SELECT count(*) FROM sqlite_master WHERE name GLOB 'vec_c*' "
                       "AND sql LIKE 'CREATE VIRTUAL TABLE%'")
                if full_precision_only:
                    sql += " AND name GLOB 'vec_c*_g*' AND name NOT GLOB '*_bit'"
            return int((await conn.execute(text(sql))).scalar_one())
    finally:
        await db.dispose()
