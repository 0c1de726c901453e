"""Tools: every call a model made (``tool_runs``), standing approvals and trusted MCP server
command lines."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, Float, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from engine.db.coltypes import EncryptedText, utcnow
from engine.db.models.base import Base, user_fk

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
    user_id: Mapped[int] = user_fk()
    tool: Mapped[str] = mapped_column(String(400))  # canonical server.tool
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ToolServerTrust(Base):
    """A stdio MCP server command line the user confirmed before it first ran (its hash)."""

    __tablename__ = "tool_server_trust"
    __table_args__ = (UniqueConstraint("user_id", "server", "digest"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = user_fk()
    server: Mapped[str] = mapped_column(String(200))
    digest: Mapped[str] = mapped_column(String(64))  # sha256 of command, args, env names
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
