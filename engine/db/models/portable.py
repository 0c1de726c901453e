"""Progress of ``parley db copy`` and ``restore`` on their target: one row per (copy, table)
and the few remapped ids."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from engine.db.coltypes import utcnow
from engine.db.models.base import Base

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
