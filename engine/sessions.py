"""Chat sessions and their messages, decrypted into plain dataclasses.

Every query is scoped by the owning user. A session's messages form a tree (``parent_id``);
the active branch runs from the root to ``sessions.current_message_id``, so editing or
regenerating keeps the old branch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.db.coltypes import UnreadableText, utcnow
from engine.db.connect import Database
from engine.errors import NotFound
from engine.types import Citation, Message, SessionDetail, SessionSummary


def _citation(row: m.Citation) -> Citation:
    return Citation(marker=row.marker, document_id=row.document_id, chunk_id=row.chunk_id,
                    path=row.path, page=row.page, line_start=row.line_start,
                    line_end=row.line_end, score=row.score, snippet=row.snippet)


def to_message(row: m.Message, citations: Iterable[m.Citation] = ()) -> Message:
    unreadable = isinstance(row.content, UnreadableText)
    return Message(id=row.id, session_id=row.session_id, parent_id=row.parent_id,
                   role=row.role, content=row.content, status=row.status, model=row.model,
                   created_at=row.created_at,
                   error="content cannot be decrypted" if unreadable else row.error,
                   citations=tuple(_citation(c) for c in citations))


def to_summary(row: m.Session, message_count: int,
               collections: Sequence[str] = ()) -> SessionSummary:
    return SessionSummary(id=row.id, title=row.title, model=row.model, provider=row.provider,
                          message_count=message_count, created_at=row.created_at,
                          updated_at=row.updated_at, archived=row.archived,
                          collections=tuple(collections), system_prompt=row.system_prompt)


class SessionStore:
    """Create, read and extend sessions of one user."""

    def __init__(self, db: Database, user_id: int) -> None:
        self.db = db
        self.user_id = user_id

    async def _owned(self, s: AsyncSession, session_id: int) -> m.Session:
        row = await s.scalar(select(m.Session).where(m.Session.id == session_id,
                                                     m.Session.user_id == self.user_id))
        if row is None:
            raise NotFound(f"no session with id {session_id}", "list them: parley sessions list")
        return row

    async def create(self, title: str = "New chat", *, model: str | None = None,
                     provider: str | None = None, system_prompt: str | None = None,
                     collections: Sequence[str] = ()) -> SessionSummary:
        """Start a session. ``collections`` names the collections its questions search."""
        async with self.db.write() as s:
            row = m.Session(user_id=self.user_id, title=title, model=model, provider=provider,
                            system_prompt=system_prompt)
            s.add(row)
            await s.flush()
            names = await self._attach_collections(s, row.id, collections)
            return to_summary(row, 0, names)

    async def _attach_collections(self, s: AsyncSession, session_id: int,
                                  names: Sequence[str]) -> list[str]:
        if not names:
            return []
        rows = (await s.scalars(select(m.Collection).where(
            m.Collection.user_id == self.user_id, m.Collection.name.in_(names)))).all()
        missing = set(names) - {r.name for r in rows}
        if missing:
            raise NotFound(f"no collection named {', '.join(sorted(missing))}",
                           "list them: parley collections list")
        s.add_all(m.SessionCollection(session_id=session_id, collection_id=r.id) for r in rows)
        return sorted(r.name for r in rows)

    async def add_message(self, session_id: int, role: str, content: str, *,
                          parent_id: int | None = None, status: str = "complete",
                          model: str | None = None, provider: str | None = None,
                          error: str | None = None) -> Message:
        """Append a message to the active branch (or under ``parent_id``) and commit."""
        async with self.db.write() as s:
            return await self.add_message_in(s, session_id, role, content, parent_id=parent_id,
                                             status=status, model=model, provider=provider,
                                             error=error)

    async def add_message_in(self, s: AsyncSession, session_id: int, role: str, content: str, *,
                             parent_id: int | None = None, status: str = "complete",
                             model: str | None = None, provider: str | None = None,
                             error: str | None = None) -> Message:
        """``add_message`` inside the caller's transaction."""
        session = await self._owned(s, session_id)
        parent = parent_id if parent_id is not None else session.current_message_id
        row = m.Message(user_id=self.user_id, session_id=session_id, parent_id=parent, role=role,
                        content=content, status=status, model=model, provider=provider,
                        error=error)
        s.add(row)
        await s.flush()
        session.current_message_id = row.id
        session.updated_at = utcnow()
        return to_message(row)

    async def get(self, session_id: int) -> SessionDetail:
        """The session and the messages of its active branch, oldest first."""
        async with self.db.read() as s:
            row = await self._owned(s, session_id)
            messages = await self._branch(s, row)
            ids = [msg.id for msg in messages]
            cites: dict[int, list[m.Citation]] = {}
            if ids:
                for c in await s.scalars(select(m.Citation).where(m.Citation.message_id.in_(ids))
                                         .order_by(m.Citation.marker)):
                    cites.setdefault(c.message_id, []).append(c)
            names = await self._collection_names(s, [row.id])
            return SessionDetail(
                session=to_summary(row, len(messages), names.get(row.id, ())),
                messages=tuple(to_message(msg, cites.get(msg.id, ())) for msg in messages))

    async def _branch(self, s: AsyncSession, session: m.Session) -> list[m.Message]:
        rows = (await s.scalars(select(m.Message).where(m.Message.session_id == session.id)
                                .order_by(m.Message.id))).all()
        by_id = {r.id: r for r in rows}
        branch: list[m.Message] = []
        cursor = by_id.get(session.current_message_id) if session.current_message_id else None
        while cursor is not None:
            branch.append(cursor)
            cursor = by_id.get(cursor.parent_id) if cursor.parent_id else None
        return branch[::-1]

    async def _collection_names(self, s: AsyncSession,
                                session_ids: Sequence[int]) -> dict[int, list[str]]:
        rows = await s.execute(
            select(m.SessionCollection.session_id, m.Collection.name)
            .join(m.Collection, m.Collection.id == m.SessionCollection.collection_id)
            .where(m.SessionCollection.session_id.in_(session_ids)))
        out: dict[int, list[str]] = {}
        for sid, name in rows:
            out.setdefault(sid, []).append(name)
        return out

    async def list(self, *, limit: int | None = None, offset: int = 0,
                   include_archived: bool = False) -> list[SessionSummary]:
        """Sessions, most recently updated first."""
        counts = (select(m.Message.session_id, func.count(m.Message.id).label("n"))
                  .group_by(m.Message.session_id).subquery())
        query = (select(m.Session, func.coalesce(counts.c.n, 0))
                 .outerjoin(counts, counts.c.session_id == m.Session.id)
                 .where(m.Session.user_id == self.user_id)
                 .order_by(m.Session.updated_at.desc(), m.Session.id.desc()).offset(offset))
        if not include_archived:
            query = query.where(m.Session.archived.is_(False))
        if limit is not None:
            query = query.limit(limit)
        async with self.db.read() as s:
            rows = (await s.execute(query)).all()
            names = await self._collection_names(s, [r.id for r, _ in rows])
            return [to_summary(r, n, names.get(r.id, ())) for r, n in rows]
