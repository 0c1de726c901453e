"""Chunk sets shared by identical copies, citation hashes, watched folders.

- ``chunk_sets``: a content cut into chunks. ``chunks`` belong to a chunk set instead of a
  document (and through it to every document holding that content); ``documents`` point
  at their chunk set. Each existing document with chunks becomes its own chunk set (same id).
- ``chunk_embeddings`` is keyed by (chunk, collection, generation): a chunk shared by two
  collections has a vector row in each index (copied, not re-embedded).
- ``citations`` keep the cited chunk's hash and the document's hash at answer time; existing
  citations whose chunk still exists take that chunk's hash (chunks are never edited in
  place, so a live chunk holds the text that was cited).
- ``watched_folders``: folders ``parley watch`` keeps in sync.
- PostgreSQL: row-level security for chunk sets (``engine/teams/rls_chunks.py``): chunks
  are admitted through the documents pointing at their set instead of by collection, and
  chunk sets never cross owners. The revision rewrites every user's rows, so FORCE is
  lifted for its transaction (the owner running it is held to the policies otherwise).
  Nothing of it on SQLite.

SQLite rebuilds ``chunks`` and ``chunk_embeddings`` (batch mode), which drops their
triggers: the FTS5 triggers and every collection's vec0 triggers are recreated. Parley runs
SQLite migrations with foreign keys off (a rebuild drops the old table, and with them on
that would cascade into the rows that reference it) and checks them before committing.

Revision ID: 0003_library_sync
Revises: 0010_session_tools
Create Date: 2026-11-30 11:40:00
"""
from __future__ import annotations

import os
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engine.db import sqlite_ddl, sqlite_search
from engine.teams import rls_chunks

revision: str = '0003_library_sync'
down_revision: str | None = '0010_session_tools'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _is_postgres() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def suffix_of(path: str) -> str:
    return os.path.splitext(path)[1].lower()[:32]


def _recreate_sqlite_triggers() -> None:
    sqlite_ddl.create_fts_triggers(op.execute)
    rows = op.get_bind().execute(sa.text(
        "SELECT id, vector_generation, dimension, pending_dimension FROM collections")).all()
    for cid, generation, dimension, pending in rows:
        for statement in sqlite_search.vector_index_ddl(cid, generation, dimension):
            op.execute(statement)
        if pending is not None:
            for statement in sqlite_search.vector_index_ddl(cid, generation + 1, pending):
                op.execute(statement)


def _check_foreign_keys() -> None:
    if not _is_postgres():
        broken = op.get_bind().execute(sa.text("PRAGMA foreign_key_check")).all()
        if broken:
            raise RuntimeError(f"foreign keys broken by the migration: {broken[:5]}")


def upgrade() -> None:
    bind = op.get_bind()
    if _is_postgres():
        rls_chunks.set_force(op.execute, False)
        rls_chunks.drop_chunk_policies(op.execute)  # they name chunks.collection_id
    op.create_table('chunk_sets',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('content_hash', sa.String(length=64), nullable=False),
    sa.Column('suffix', sa.String(length=32), nullable=False),
    sa.Column('chunk_count', sa.Integer(), nullable=False),
    sa.Column('token_count', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['created_by'], ['users.id'], name=op.f('fk_chunk_sets_created_by_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_chunk_sets_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chunk_sets'))
    )
    op.create_index('ix_chunk_sets_user_id_content_hash', 'chunk_sets',
                    ['user_id', 'content_hash'], unique=False)
    op.create_table('watched_folders',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.Text(), nullable=False),
    sa.Column('collection', sa.String(length=200), nullable=False),
    sa.Column('include', sa.JSON(), nullable=False),
    sa.Column('exclude', sa.JSON(), nullable=False),
    sa.Column('tags', sa.JSON(), nullable=False),
    sa.Column('hidden', sa.Boolean(), nullable=False),
    sa.Column('last_sync_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_watched_folders_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_watched_folders')),
    sa.UniqueConstraint('user_id', 'path', 'collection', name=op.f('uq_watched_folders_user_id'))
    )
    op.create_index(op.f('ix_watched_folders_user_id'), 'watched_folders', ['user_id'],
                    unique=False)

    # Each document with chunks becomes its own chunk set, with the document's id.
    op.execute(
        "INSERT INTO chunk_sets (id, user_id, content_hash, suffix, chunk_count, token_count, "
        "created_at, created_by) SELECT d.id, d.user_id, coalesce(d.content_hash, ''), '', "
        "d.chunk_count, d.token_count, d.created_at, d.user_id FROM documents d "
        "WHERE EXISTS (SELECT 1 FROM chunks c WHERE c.document_id = d.id)")
    rows = bind.execute(sa.text(
        "SELECT d.id, d.source_path FROM documents d JOIN chunk_sets s ON s.id = d.id")).all()
    if rows:
        bind.execute(sa.text("UPDATE chunk_sets SET suffix = :suffix WHERE id = :id"),
                     [{"id": i, "suffix": suffix_of(p)} for i, p in rows])
    if _is_postgres():
        op.execute("SELECT setval(pg_get_serial_sequence('chunk_sets', 'id'), "
                   "coalesce((SELECT max(id) FROM chunk_sets), 0) + 1, false)")

    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.add_column(sa.Column('chunk_set_id', sa.Integer(), nullable=True))
        batch_op.create_index(batch_op.f('ix_documents_chunk_set_id'), ['chunk_set_id'],
                              unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_documents_chunk_set_id_chunk_sets'),
                                    'chunk_sets', ['chunk_set_id'], ['id'], ondelete='SET NULL')
    op.execute("UPDATE documents SET chunk_set_id = id "
               "WHERE id IN (SELECT id FROM chunk_sets)")

    op.add_column('chunks', sa.Column('chunk_set_id', sa.Integer(), nullable=True))
    op.execute("UPDATE chunks SET chunk_set_id = document_id")
    with op.batch_alter_table('chunks', schema=None) as batch_op:
        batch_op.alter_column('chunk_set_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_index('ix_chunks_document_id_chunk_index')
        batch_op.drop_index(batch_op.f('ix_chunks_collection_id'))
        batch_op.drop_constraint(batch_op.f('fk_chunks_document_id_documents'),
                                 type_='foreignkey')
        batch_op.drop_constraint(batch_op.f('fk_chunks_collection_id_collections'),
                                 type_='foreignkey')
        batch_op.drop_column('document_id')
        batch_op.drop_column('collection_id')
        batch_op.create_foreign_key(batch_op.f('fk_chunks_chunk_set_id_chunk_sets'),
                                    'chunk_sets', ['chunk_set_id'], ['id'], ondelete='CASCADE')
        batch_op.create_index('ix_chunks_chunk_set_id_chunk_index',
                              ['chunk_set_id', 'chunk_index'], unique=False)

    with op.batch_alter_table('chunk_embeddings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('pk_chunk_embeddings'), type_='primary')
        batch_op.create_primary_key(batch_op.f('pk_chunk_embeddings'),
                                    ['chunk_id', 'generation', 'collection_id'])

    op.add_column('citations', sa.Column('chunk_hash', sa.String(length=64), nullable=True))
    op.add_column('citations', sa.Column('document_hash', sa.String(length=64),
                                         nullable=True))
    op.execute("UPDATE citations SET chunk_hash = "
               "(SELECT c.content_hash FROM chunks c WHERE c.id = citations.chunk_id) "
               "WHERE chunk_id IS NOT NULL")
    # The document's hash only where it still holds the cited chunk (else it changed since).
    op.execute("UPDATE citations SET document_hash = (SELECT d.content_hash FROM documents d "
               "JOIN chunks c ON c.chunk_set_id = d.chunk_set_id "
               "WHERE d.id = citations.document_id AND c.id = citations.chunk_id) "
               "WHERE chunk_id IS NOT NULL AND document_id IS NOT NULL")

    if _is_postgres():
        rls_chunks.install(op.execute,
                           bind.execute(sa.text("SELECT current_schema()")).scalar())
        rls_chunks.set_force(op.execute, True)
    else:
        _recreate_sqlite_triggers()
    _check_foreign_keys()


def downgrade() -> None:
    if _is_postgres():
        rls_chunks.set_force(op.execute, False)
        rls_chunks.uninstall(op.execute)
    op.drop_column('citations', 'document_hash')
    op.drop_column('citations', 'chunk_hash')

    # One vector row per (chunk, generation) again: a shared chunk keeps the row of the
    # collection its restored owner belongs to.
    op.add_column('chunks', sa.Column('document_id', sa.Integer(), nullable=True))
    op.add_column('chunks', sa.Column('collection_id', sa.Integer(), nullable=True))
    op.execute("UPDATE chunks SET document_id = (SELECT min(d.id) FROM documents d "
               "WHERE d.chunk_set_id = chunks.chunk_set_id)")
    op.execute("UPDATE chunks SET collection_id = (SELECT d.collection_id FROM documents d "
               "WHERE d.id = chunks.document_id)")
    op.execute("DELETE FROM chunks WHERE document_id IS NULL")
    op.execute("DELETE FROM chunk_embeddings WHERE chunk_id NOT IN (SELECT id FROM chunks)")
    op.execute("DELETE FROM chunk_embeddings WHERE collection_id <> (SELECT c.collection_id "
               "FROM chunks c WHERE c.id = chunk_embeddings.chunk_id)")
    # Copies that shared a chunk set lose their chunks: re-ingesting them restores them.
    op.execute("UPDATE documents SET status = 'error', error = 'chunks shared with a copy; "
               "ingest again', chunk_count = 0 WHERE chunk_set_id IS NOT NULL AND id NOT IN "
               "(SELECT DISTINCT document_id FROM chunks)")
    with op.batch_alter_table('chunk_embeddings', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('pk_chunk_embeddings'), type_='primary')
        batch_op.create_primary_key(batch_op.f('pk_chunk_embeddings'),
                                    ['chunk_id', 'generation'])
    with op.batch_alter_table('chunks', schema=None) as batch_op:
        batch_op.alter_column('document_id', existing_type=sa.Integer(), nullable=False)
        batch_op.alter_column('collection_id', existing_type=sa.Integer(), nullable=False)
        batch_op.drop_index('ix_chunks_chunk_set_id_chunk_index')
        batch_op.drop_constraint(batch_op.f('fk_chunks_chunk_set_id_chunk_sets'),
                                 type_='foreignkey')
        batch_op.drop_column('chunk_set_id')
        batch_op.create_foreign_key(batch_op.f('fk_chunks_document_id_documents'), 'documents',
                                    ['document_id'], ['id'], ondelete='CASCADE')
        batch_op.create_foreign_key(batch_op.f('fk_chunks_collection_id_collections'),
                                    'collections', ['collection_id'], ['id'], ondelete='CASCADE')
        batch_op.create_index('ix_chunks_document_id_chunk_index',
                              ['document_id', 'chunk_index'], unique=False)
        batch_op.create_index(batch_op.f('ix_chunks_collection_id'), ['collection_id'],
                              unique=False)
    with op.batch_alter_table('documents', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_documents_chunk_set_id_chunk_sets'),
                                 type_='foreignkey')
        batch_op.drop_index(batch_op.f('ix_documents_chunk_set_id'))
        batch_op.drop_column('chunk_set_id')
    op.drop_index(op.f('ix_watched_folders_user_id'), table_name='watched_folders')
    op.drop_table('watched_folders')
    op.drop_index('ix_chunk_sets_user_id_content_hash', table_name='chunk_sets')
    op.drop_table('chunk_sets')
    if _is_postgres():
        rls_chunks.restore_chunk_policies(op.execute)
        rls_chunks.set_force(op.execute, True)
    else:
        _recreate_sqlite_triggers()
    _check_foreign_keys()
