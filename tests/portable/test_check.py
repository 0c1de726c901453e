"""``parley db check``: a healthy database passes; a copy damaged in each way the check
detects fails with that problem named and its repair; ``--repair`` fixes what is derived."""

from __future__ import annotations

import json
import shutil
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from engine.db.connect import Database, create_engine, sqlite_path
from tests.conftest import PostgresServer
from tests.portable.support import cli, populate, real_cli

Damage = Callable[[Database], Awaitable[None]]


async def _sql(db: Database, *statements: str) -> None:
    """Run ``statements`` with foreign keys off, the way a bad tool or a bug would."""
    path = sqlite_path(str(db.engine.url))
    if path is not None:
        import sqlean
        import sqlite_vec

        conn = sqlean.connect(str(path), isolation_level=None)
        conn.enable_load_extension(True)
        sqlite_vec.load(conn)
        conn.execute("PRAGMA foreign_keys=OFF")
        for sql in statements:
            conn.execute(sql)
        conn.close()
        return
    async with db.engine.connect() as pg:
        await pg.execute(text("SET session_replication_role = replica"))
        for sql in statements:
            await pg.execute(text(sql))
        await pg.commit()


async def _missing_index(db: Database) -> None:
    name = "DROP TABLE vec_c1_g1" if db.backend == "sqlite" else "DROP INDEX ix_vec_c1_g1"
    await _sql(db, name)


SQLITE_DAMAGE: dict[str, tuple[str, Damage, bool]] = {
    "keyword index": ("keyword index", lambda db: _sql(
        db, "INSERT INTO chunk_fts(chunk_fts, rowid, text) VALUES('delete', 1, 'not it')"), True),
    "vector count": ("vector index", lambda db: _sql(
        db, "DELETE FROM vec_c1_g1 WHERE chunk_id = 1"), True),
    "vector index": ("vector index", _missing_index, True),
    "orphan": ("orphan vectors", lambda db: _sql(
        db, "INSERT INTO chunk_embeddings(chunk_id, generation, collection_id, embedding) "
            "SELECT 999, 1, collection_id, embedding FROM chunk_embeddings LIMIT 1"), True),
    "citation": ("dangling citations", lambda db: _sql(
        db, "UPDATE citations SET chunk_id = 999 WHERE chunk_id IS NOT NULL"), True),
    "missing vectors": ("missing vectors", lambda db: _sql(
        db, "DELETE FROM chunk_embeddings WHERE chunk_id = 2 AND generation = 1"), False),
    "unfinished copy": ("unfinished copy", lambda db: _sql(
        db, "INSERT INTO parley_copy_state (copy_id, table_name, id_offset, id_reserved, "
            "last_key, copied, skipped, done, updated_at) VALUES ('x', 'users', 0, NULL, NULL, "
            "0, 0, false, CURRENT_TIMESTAMP)"), False),
}


async def _run_damage(url: str, damage: Damage) -> None:
    db = Database(create_engine(url))
    try:
        await damage(db)
    finally:
        await db.dispose()


async def test_sqlite_damage_is_found_named_and_repaired(parley_home: Path) -> None:
    healthy = parley_home / "healthy.db"
    await populate(f"sqlite:///{healthy}", second_user=False)
    ok = cli("db", "check", "--json", url=f"sqlite:///{healthy}")
    assert ok.returncode == 0, ok.stderr
    assert json.loads(ok.stdout)["ok"] is True
    for i, (name, (problem, damage, repairable)) in enumerate(SQLITE_DAMAGE.items()):
        copy = parley_home / f"damaged-{name.replace(' ', '-')}.db"
        shutil.copy(healthy, copy)
        url = f"sqlite:///{copy}"
        await _run_damage(url, damage)
        # the first failed check through the real process (exit code and the one line on
        # stderr as a user meets them), the others in this process
        out = (real_cli if i == 0 else cli)("db", "check", "--json", url=url)
        assert out.returncode == 1, (name, out.stdout)
        problems = json.loads(out.stdout)["problems"]
        assert problem in [p["check"] for p in problems], (name, problems)
        assert out.stderr.startswith("parley: error: ") and out.stderr.count("\n") == 1
        if repairable:
            assert all(p["repair"] == "parley db check --repair" for p in problems
                       if p["check"] == problem)
            fixed = cli("db", "check", "--repair", url=url)
            assert fixed.returncode == 0, (name, fixed.stdout, fixed.stderr)
        else:
            assert any("parley" in p["repair"] for p in problems)


async def test_sqlite_wrong_key_and_damaged_file(parley_home: Path) -> None:
    path = parley_home / "k.db"
    await populate(f"sqlite:///{path}", second_user=False)
    wrong = cli("db", "check", url=f"sqlite:///{path}",
                env_extra={"PARLEY_KEY": Fernet.generate_key().decode()})
    assert wrong.returncode == 1
    assert "the current key does not open this database" in wrong.stderr
    broken = parley_home / "broken.db"
    data = bytearray(path.read_bytes())
    page = 4096
    for offset in range(page * 3, len(data) - page, page * 2):  # scribble over b-tree pages
        data[offset + 100: offset + 400] = b"\xff" * 300
    broken.write_bytes(bytes(data))
    # a real process: the file fails to open, and aiosqlite's worker thread, stopped
    # without being awaited, would report to the finished event loop of an in-process run
    out = real_cli("db", "check", "--json", url=f"sqlite:///{broken}")
    assert out.returncode == 1
    checks = {p["check"] for p in json.loads(out.stdout)["problems"]}
    assert checks & {"sqlite integrity", "unreadable"}, checks


async def test_postgres_damage(parley_home: Path, postgres_server: PostgresServer) -> None:
    name = await postgres_server.create_database()
    url = postgres_server.sqlalchemy_url(name)
    try:
        await populate(url, second_user=False)
        assert cli("db", "check", url=url).returncode == 0
        for damage_name in ("orphan", "citation", "vector index"):
            problem, damage, _ = SQLITE_DAMAGE[damage_name]
            await _run_damage(url, damage)
            out = cli("db", "check", "--json", url=url)
            assert out.returncode == 1
            assert problem in [p["check"] for p in json.loads(out.stdout)["problems"]]
            assert cli("db", "check", "--repair", url=url).returncode == 0
    finally:
        await postgres_server.drop_database(name)
