"""The schema: SQLAlchemy 2.0 declarative models shared by SQLite and PostgreSQL.

Every row that belongs to a user carries ``user_id`` and every engine query filters on it.
What differs per backend is not here: SQLite's vec0 and FTS5 virtual tables and
PostgreSQL's ``tsv`` column and HNSW/GIN indexes are created by the migrations and used by
``engine/db/sqlite_search.py`` and ``engine/db/pg_search.py``.

Relationships load explicitly (``lazy="raise"``): nothing loads behind the caller's back.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from engine.db.coltypes import Embedding, EncryptedText, UTCDateTime, utcnow

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: JSON(), list[Any]: JSON()}


def _user_fk() -> Any:
    return mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)


class Meta(Base):
    """Database-wide facts: key check value, KDF salt, rotation state."""

    __tablename__ = "parley_meta"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Collection(Base):
    """A set of documents indexed with one embedder (name and dimension recorded)."""

    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _user_fk()
    name: Mapped[str] = mapped_column(String(200))
    embedder: Mapped[str] = mapped_column(String(200))
    dimension: Mapped[int] = mapped_column(Integer)
    # Vectors of the live index; a re-embed writes generation+1 and swaps when complete.
    vector_generation: Mapped[int] = mapped_column(Integer, default=1)
    pending_embedder: Mapped[str | None] = mapped_column(String(200))
    pending_dimension: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Session(Base):
    """A chat session. The active branch ends at ``current_message_id``."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user_updated", "user_id", "updated_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _user_fk()
    title: Mapped[str] = mapped_column(EncryptedText())
    model: Mapped[str | None] = mapped_column(String(200))
    provider: Mapped[str | None] = mapped_column(String(200))
    system_prompt: Mapped[str | None] = mapped_column(EncryptedText())
    # No foreign key: messages point at their session, and a cycle would complicate deletes.
    # ``refers_to`` tells ``engine/portable`` to remap it like one when copying.
    current_message_id: Mapped[int | None] = mapped_column(Integer,
                                                           info={"refers_to": "messages.id"})
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Session settings (engine.chat.setup); None: the configured value.
    rag: Mapped[bool | None] = mapped_column(Boolean)
    params: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # Tools the session may use (server.tool globs); None: the configuration, []: none.
    tools: Mapped[list[str] | None] = mapped_column(JSON)
    collections: Mapped[list[Collection]] = relationship(secondary="session_collections",
                                                         lazy="raise")


class SessionCollection(Base):
    __tablename__ = "session_collections"
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"),
                                            primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"),
                                               primary_key=True)


class Message(Base):
    __tablename__ = "messages"
    # (user_id, id): history search walks one user's messages newest first, in batches.
    __table_args__ = (Index("ix_messages_session_id_id", "session_id", "id"),
                      Index("ix_messages_user_id_id", "user_id", "id"))
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    session_id: Mapped[int] = mapped_column(ForeignKey("sessions.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(EncryptedText())
    status: Mapped[str] = mapped_column(String(16), default="complete")
    error: Mapped[str | None] = mapped_column(Text)
    model: Mapped[str | None] = mapped_column(String(200))
    provider: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    citations: Mapped[list[Citation]] = relationship(lazy="raise", order_by="Citation.marker",
                                                     passive_deletes=True)


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (UniqueConstraint("collection_id", "path_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _user_fk()
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"),
                                               index=True)
    source_path: Mapped[str] = mapped_column(Text)
    path_hash: Mapped[str] = mapped_column(String(64))
    content_hash: Mapped[str | None] = mapped_column(String(64))
    kind: Mapped[str | None] = mapped_column(String(32))
    mime: Mapped[str | None] = mapped_column(String(100))
    size: Mapped[int] = mapped_column(Integer, default=0)
    title: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="indexed")
    error: Mapped[str | None] = mapped_column(Text)
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    mtime: Mapped[float | None] = mapped_column(Float)
    indexed_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The chunks this document's content was cut into, shared with its identical copies.
    chunk_set_id: Mapped[int | None] = mapped_column(
        ForeignKey("chunk_sets.id", ondelete="SET NULL"), index=True)


class DocumentTag(Base):
    __tablename__ = "document_tags"
    document_id: Mapped[int] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"),
                                             primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True, index=True)


class Chunk(Base):
    """A span of a content (chunk set). Its text stays plain: keyword search needs it.

    A chunk belongs to every document that points at its chunk set: the collections it is
    found in are those documents' collections."""

    __tablename__ = "chunks"
    __table_args__ = (Index("ix_chunks_chunk_set_id_chunk_index", "chunk_set_id", "chunk_index"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _user_fk()
    chunk_set_id: Mapped[int] = mapped_column(ForeignKey("chunk_sets.id", ondelete="CASCADE"))
    chunk_index: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(64))
    page: Mapped[int | None] = mapped_column(Integer)
    heading_path: Mapped[str | None] = mapped_column(Text)
    line_start: Mapped[int | None] = mapped_column(Integer)
    line_end: Mapped[int | None] = mapped_column(Integer)
    char_start: Mapped[int] = mapped_column(Integer)
    char_end: Mapped[int] = mapped_column(Integer)
    token_count: Mapped[int] = mapped_column(Integer, default=0)


class ChunkEmbedding(Base):
    """A chunk's vector in one generation of one collection's index (a chunk shared by two
    collections has a row in each: the vector is computed once, copied)."""

    __tablename__ = "chunk_embeddings"
    __table_args__ = (Index("ix_chunk_embeddings_collection_generation",
                            "collection_id", "generation"),)
    chunk_id: Mapped[int] = mapped_column(ForeignKey("chunks.id", ondelete="CASCADE"),
                                          primary_key=True)
    generation: Mapped[int] = mapped_column(Integer, primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"),
                                               primary_key=True)
    embedding: Mapped[np.ndarray] = mapped_column(Embedding())


class Citation(Base):
    __tablename__ = "citations"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _user_fk()
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"),
                                            index=True)
    # A citation outlives a re-indexed or removed document: it keeps path, span and snippet.
    chunk_id: Mapped[int | None] = mapped_column(ForeignKey("chunks.id", ondelete="SET NULL"),
                                                 index=True)
    document_id: Mapped[int | None] = mapped_column(
        ForeignKey("documents.id", ondelete="SET NULL"), index=True)
    marker: Mapped[int] = mapped_column(Integer)
    position: Mapped[int | None] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    page: Mapped[int | None] = mapped_column(Integer)
    line_start: Mapped[int | None] = mapped_column(Integer)
    line_end: Mapped[int | None] = mapped_column(Integer)
    score: Mapped[float | None] = mapped_column(Float)
    snippet: Mapped[str] = mapped_column(EncryptedText())
    # What the source said when the answer was written, to tell later whether it still does.
    chunk_hash: Mapped[str | None] = mapped_column(String(64))
    document_hash: Mapped[str | None] = mapped_column(String(64))


class TokenUsage(Base):
    """One model call or embedding batch. Outlives its session (the link is cleared)."""

    __tablename__ = "token_usage"
    __table_args__ = (Index("ix_token_usage_user_created", "user_id", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _user_fk()
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="SET NULL"), index=True)
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # "chat" | "embedding"
    provider: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    embedding_tokens: Mapped[int] = mapped_column(Integer, default=0)
    estimated: Mapped[bool] = mapped_column(Boolean, default=False)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    latency_ms: Mapped[float | None] = mapped_column(Float)
    first_token_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IngestionRun(Base):
    __tablename__ = "ingestion_runs"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _user_fk()
    collection_id: Mapped[int | None] = mapped_column(
        ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    target: Mapped[list[Any]] = mapped_column(default=list)
    options: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="running")
    files_seen: Mapped[int] = mapped_column(Integer, default=0)
    indexed: Mapped[int] = mapped_column(Integer, default=0)
    skipped: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    pruned: Mapped[int] = mapped_column(Integer, default=0)
    chunks: Mapped[int] = mapped_column(Integer, default=0)
    errors: Mapped[list[Any]] = mapped_column(default=list)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column()


class AuditLog(Base):
    """Who did what to what: key rotation, deletes, migrations."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"),
                                                index=True)
    actor: Mapped[str] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(Text)
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Persona(Base):
    """A named chat preset saved from a session (the config file can define more)."""

    __tablename__ = "personas"
    __table_args__ = (UniqueConstraint("user_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    provider: Mapped[str | None] = mapped_column(String(200))
    model: Mapped[str | None] = mapped_column(String(200))
    system_prompt: Mapped[str | None] = mapped_column(EncryptedText())
    collections: Mapped[list[Any]] = mapped_column(default=list)
    rag: Mapped[bool | None] = mapped_column(Boolean)
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    first_message: Mapped[str | None] = mapped_column(EncryptedText())
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Attachment(Base):
    """A file (or pasted text) sent with a question; its text is encrypted like the question."""

    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    message_id: Mapped[int] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"),
                                            index=True)
    position: Mapped[int] = mapped_column(Integer)
    path: Mapped[str] = mapped_column(Text)
    kind: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(EncryptedText())
    pages: Mapped[list[Any]] = mapped_column(default=list)  # [[page, char_start, char_end]]


class ModelInfo(Base):
    """What a model server said about one of its models (a cache, refreshed when stale)."""

    __tablename__ = "model_info"
    provider: Mapped[str] = mapped_column(String(200), primary_key=True)
    model: Mapped[str] = mapped_column(String(200), primary_key=True)
    base_url: Mapped[str] = mapped_column(Text)
    context_window: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str | None] = mapped_column(String(64))
    checked_at: Mapped[datetime] = mapped_column(default=utcnow)


class UserKey(Base):
    """A user's encryption key facts: check value, KDF salt, unfinished rotation (JSON).

    Each user's history is encrypted under their own key (teams on PostgreSQL), so what
    identifies the key belongs to the user, not to the database."""

    __tablename__ = "user_keys"
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    key_check: Mapped[str | None] = mapped_column(Text)
    kdf_salt: Mapped[str | None] = mapped_column(String(64))
    rotation: Mapped[str | None] = mapped_column(Text)


class CollectionShare(Base):
    """A collection its owner shares with one user (``user_id``) or everyone (NULL)."""

    __tablename__ = "collection_shares"
    __table_args__ = (Index("ix_collection_shares_collection_grantee", "collection_id",
                            "grantee_id", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    collection_id: Mapped[int] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"))
    owner_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                          index=True)
    grantee_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                                   index=True)
    can_write: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ToolRun(Base):
    """One tool call a model asked for while answering (or run by hand: no session).

    Arguments, result and error are encrypted like message content; the result is the
    full text (up to ``tools.store_max_chars``), not the part sent to the model.
    """

    __tablename__ = "tool_runs"
    __table_args__ = (Index("ix_tool_runs_user_id_session_id", "user_id", "session_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    session_id: Mapped[int | None] = mapped_column(
        ForeignKey("sessions.id", ondelete="CASCADE"))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), index=True)
    round: Mapped[int] = mapped_column(Integer, default=1)
    call_index: Mapped[int] = mapped_column(Integer, default=0)
    call_id: Mapped[str] = mapped_column(String(128))
    server: Mapped[str] = mapped_column(String(200))
    tool: Mapped[str] = mapped_column(String(200))
    arguments: Mapped[str] = mapped_column(EncryptedText())
    result: Mapped[str | None] = mapped_column(EncryptedText())
    error: Mapped[str | None] = mapped_column(EncryptedText())
    result_chars: Mapped[int] = mapped_column(Integer, default=0)
    truncated: Mapped[bool] = mapped_column(Boolean, default=False)
    # ok | error | denied | timeout | cancelled
    status: Mapped[str] = mapped_column(String(16))
    # allow_list | auto | once | session | always | denied | deny_list | no_terminal | ...
    decision: Mapped[str] = mapped_column(String(16))
    started_at: Mapped[datetime | None] = mapped_column()
    duration_ms: Mapped[float | None] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ToolApproval(Base):
    """A tool the user answered "always" for: it runs without asking from then on."""

    __tablename__ = "tool_approvals"
    __table_args__ = (UniqueConstraint("user_id", "tool"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _user_fk()
    tool: Mapped[str] = mapped_column(String(400))  # canonical server.tool
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ToolServerTrust(Base):
    """A stdio MCP server command line the user confirmed before it first ran (its hash)."""

    __tablename__ = "tool_server_trust"
    __table_args__ = (UniqueConstraint("user_id", "server", "digest"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _user_fk()
    server: Mapped[str] = mapped_column(String(200))
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of command, args, env names
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChunkSet(Base):
    """One content cut into chunks, shared by every document (path, collection) holding
    identical bytes of the same file type: chunked and embedded once."""

    __tablename__ = "chunk_sets"
    __table_args__ = (Index("ix_chunk_sets_user_id_content_hash", "user_id", "content_hash"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    content_hash: Mapped[str] = mapped_column(String(64))
    suffix: Mapped[str] = mapped_column(String(32), default="")  # the loader depends on it
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    token_count: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Who wrote it: the owner, or a member writing into a collection shared for writing.
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))


class WatchedFolder(Base):
    """A folder kept in sync with a collection (``parley watch``)."""

    __tablename__ = "watched_folders"
    __table_args__ = (UniqueConstraint("user_id", "path", "collection"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = _user_fk()
    path: Mapped[str] = mapped_column(Text)
    collection: Mapped[str] = mapped_column(String(200))
    include: Mapped[list[Any]] = mapped_column(default=list)
    exclude: Mapped[list[Any]] = mapped_column(default=list)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    hidden: Mapped[bool] = mapped_column(Boolean, default=False)
    last_sync_at: Mapped[datetime | None] = mapped_column()
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CopyState(Base):
    """How far one ``parley db copy`` into this database got (``engine/portable``)."""

    __tablename__ = "parley_copy_state"
    copy_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    id_offset: Mapped[int] = mapped_column(BigInteger, default=0)
    # the top of the id block taken from the table's sequence (PostgreSQL)
    id_reserved: Mapped[int | None] = mapped_column(BigInteger)
    last_key: Mapped[str | None] = mapped_column(Text)  # JSON list: the last source key copied
    copied: Mapped[int] = mapped_column(BigInteger, default=0)
    skipped: Mapped[int] = mapped_column(BigInteger, default=0)
    done: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    # who ran the copy (row-level security: a member sees only their own copies); NULL: a
    # role with no user row on the target yet (the owner creating it, a superuser)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))


class CopyMap(Base):
    """Source ids a merging copy matched to rows already here (the rest follow the offset)."""

    __tablename__ = "parley_copy_map"
    copy_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    table_name: Mapped[str] = mapped_column(String(128), primary_key=True)
    old_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    new_id: Mapped[int] = mapped_column(BigInteger)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
