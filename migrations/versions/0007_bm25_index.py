"""PostgreSQL: the pg_textsearch BM25 index on chunks.text, when the server has it.

Keyword search uses this index (Block-Max WAND top-k) instead of computing BM25 in SQL.
The extension needs ``shared_preload_libraries``; when the server does not offer it, or
this role may not create it, nothing is created and keyword search keeps its exact SQL
BM25 (``parley db current`` says why). Running ``parley db upgrade`` again after installing
the extension creates the index then. SQLite: nothing (FTS5 already ranks by BM25).

Revision ID: 0007_bm25_index
Revises: 0002
Create Date: 2026-11-30 11:40:00
"""
from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = '0007_bm25_index'
down_revision: str | None = '0006_teams'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from engine.db import pg_textsearch

    pg_textsearch.ensure_index(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    from engine.db import pg_textsearch

    # The extension stays: other databases or objects may use it, and dropping it is the
    # server administrator's call.
    pg_textsearch.drop_index(bind)
