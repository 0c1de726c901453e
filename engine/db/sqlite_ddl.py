"""SQLite-only DDL: the FTS5 keyword index and its sync triggers.

Shared by the migrations and the tests. Alembic's batch mode rebuilds a table by copying it,
which silently drops its triggers: any revision that batch-alters ``chunks`` must call
``create_fts_triggers`` again (a test counts the triggers after ``upgrade head``).
"""

from __future__ import annotations

from collections.abc import Callable

FTS_TABLE = "chunk_fts"

CREATE_FTS = (
    f"CREATE VIRTUAL TABLE IF NOT EXISTS {FTS_TABLE} USING fts5("
    "text, content='chunks', content_rowid='id', "
    "tokenize='porter unicode61 remove_diacritics 2')"
)
# Overwrite deleted terms in the index right away instead of at the next merge.
FTS_SECURE_DELETE = f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rank) VALUES('secure-delete', 1)"

FTS_TRIGGERS = {
    "chunks_fts_ai": (
        "CREATE TRIGGER IF NOT EXISTS chunks_fts_ai AFTER INSERT ON chunks BEGIN "
        f"INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.id, new.text); END"
    ),
    "chunks_fts_ad": (
        "CREATE TRIGGER IF NOT EXISTS chunks_fts_ad AFTER DELETE ON chunks BEGIN "
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) VALUES ('delete', old.id, old.text); "
        "END"
    ),
    "chunks_fts_au": (
        "CREATE TRIGGER IF NOT EXISTS chunks_fts_au AFTER UPDATE OF text ON chunks BEGIN "
        f"INSERT INTO {FTS_TABLE}({FTS_TABLE}, rowid, text) VALUES ('delete', old.id, old.text); "
        f"INSERT INTO {FTS_TABLE}(rowid, text) VALUES (new.id, new.text); END"
    ),
}


def create_fts(execute: Callable[[str], object]) -> None:
    """Create the FTS5 table and its triggers (idempotent)."""
    execute(CREATE_FTS)
    execute(FTS_SECURE_DELETE)
    create_fts_triggers(execute)


def create_fts_triggers(execute: Callable[[str], object]) -> None:
    for ddl in FTS_TRIGGERS.values():
        execute(ddl)


def drop_fts(execute: Callable[[str], object]) -> None:
    for name in FTS_TRIGGERS:
        execute(f"DROP TRIGGER IF EXISTS {name}")
    execute(f"DROP TABLE IF EXISTS {FTS_TABLE}")
