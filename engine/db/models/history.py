"""Chat history: sessions, their collections, messages (encrypted), citations, token usage,
personas, attachments and what a model server said about its models."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from engine.db.coltypes import EncryptedText, utcnow
from engine.db.models.base import Base, user_fk

class Session(Base):
    """A chat session. The active branch ends at ``current_message_id``."""

    __tablename__ = "sessions"
    __table_args__ = (Index("ix_sessions_user_updated", "user_id", "updated_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = user_fk()
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
    # The persona the session's tools came from, until they are set otherwise.
    tools_persona: Mapped[str | None] = mapped_column(String(100))
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


class Citation(Base):
    __tablename__ = "citations"
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = user_fk()
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
    user_id: Mapped[int] = user_fk()
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
    # server.tool globs like sessions.tools: NULL follows the configuration, [] none
    tools: Mapped[list[str] | None] = mapped_column(JSON)


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
