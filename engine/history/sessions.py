"""Chat sessions and their messages, decrypted into plain dataclasses.

Every query is scoped by the owning user. A session's messages form a tree (``parent_id``);
the active branch runs from the root to ``sessions.current_message_id``, so editing or
regenerating keeps the old branch.

Deleting really deletes: the database cascades to messages and citations (usage rows keep
their counts but lose the link), SQLite's ``secure_delete`` zeroes the freed bytes, and the
WAL is checkpointed and truncated so no copy lingers there. Export, import and history
search live in ``engine.session_io`` and ``engine.history_search``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.db.coltypes import UnreadableText, utcnow
from engine.db.connect import Database
from engine.db.reconnect import retry_read
from engine.drift import check_citations
from engine.errors import NotFound, UsageError
from engine.types import (
    AttachmentInfo,
    Citation,
    CitationDrift,
    HistorySearchResult,
    Message,
    SessionDeleted,
    SessionDetail,
    SessionImported,
    SessionSummary,
)


async def purge_wal(db: Database) -> None:
    """SQLite: copy the WAL into the database and truncate it, so deleted or re-encrypted
    bytes do not linger there (``secure_delete`` already zeroes them in the file).

    Best effort: with a reader still open the checkpoint cannot finish; the next one will.
    """
    if db.backend != "sqlite":
        return
    async with db.engine.connect() as conn:
        # The raw driver connection: SQLAlchemy would wrap the pragma in BEGIN IMMEDIATE,
        # and a checkpoint cannot run inside a transaction.
        raw = (await conn.get_raw_connection()).driver_connection
        previous = await (await raw.execute("PRAGMA busy_timeout")).fetchone()
        # A TRUNCATE checkpoint waits for readers: never keep a delete waiting long for one.
        await raw.execute("PRAGMA busy_timeout = 250")
        try:
            await raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        finally:
            await raw.execute(f"PRAGMA busy_timeout = {int(previous[0])}")


async def _attachment_infos(s: AsyncSession,
                            session_id: int) -> dict[int, list[AttachmentInfo]]:
    """The attachments of a session's questions, by message id."""
    from engine.chat.prompt import estimate_tokens

    out: dict[int, list[AttachmentInfo]] = {}
    for row in await s.scalars(
            select(m.Attachment).join(m.Message, m.Message.id == m.Attachment.message_id)
            .where(m.Message.session_id == session_id)
            .order_by(m.Attachment.message_id, m.Attachment.position)):
        out.setdefault(row.message_id, []).append(AttachmentInfo(
            path=row.path, kind=row.kind, lines=len(row.text.splitlines()),
            tokens=estimate_tokens(row.text)))
    return out


def _citation(row: m.Citation, drift: Mapping[int, CitationDrift]) -> Citation:
    return Citation(marker=row.marker, document_id=row.document_id, chunk_id=row.chunk_id,
                    path=row.path, page=row.page, line_start=row.line_start,
                    line_end=row.line_end, score=row.score, snippet=row.snippet,
                    drift=drift.get(row.id))


def to_message(row: m.Message, citations: Iterable[m.Citation] = (),
               alternatives: Sequence[int] = (),
               attachments: Sequence[AttachmentInfo] = (),
               drift: Mapping[int, CitationDrift] | None = None) -> Message:
    unreadable = isinstance(row.content, UnreadableText)
    return Message(id=row.id, session_id=row.session_id, parent_id=row.parent_id,
                   role=row.role, content=row.content, status=row.status, model=row.model,
                   created_at=row.created_at,
                   error="content cannot be decrypted" if unreadable else row.error,
                   citations=tuple(_citation(c, drift or {}) for c in citations),
                   alternatives=tuple(alternatives) if len(alternatives) > 1 else (),
                   attachments=tuple(attachments))


def to_summary(row: m.Session, message_count: int,
               collections: Sequence[str] = ()) -> SessionSummary:
    return SessionSummary(id=row.id, title=row.title, model=row.model, provider=row.provider,
                          message_count=message_count, created_at=row.created_at,
                          updated_at=row.updated_at, archived=row.archived,
                          collections=tuple(collections), system_prompt=row.system_prompt,
                          rag=row.rag, params=dict(row.params or {}),
                          tools=None if row.tools is None else tuple(row.tools),
                          tools_persona=row.tools_persona)


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

    @retry_read
    async def get(self, session_id: int, *, all_branches: bool = False) -> SessionDetail:
        """The session and the messages of its active branch, oldest first.

        ``all_branches`` returns every message of the session instead (by id, which is
        creation order); ``parent_id`` tells the tree.
        """
        async with self.db.read() as s:
            row = await self._owned(s, session_id)
            rows = (await s.scalars(select(m.Message).where(m.Message.session_id == row.id)
                                    .order_by(m.Message.id))).all()
            messages = list(rows) if all_branches else self._branch(row, rows)
            cites: dict[int, list[m.Citation]] = {}
            # Joined on the session rather than an IN list of ids: no bound-parameter limit.
            for c in await s.scalars(
                    select(m.Citation).join(m.Message, m.Message.id == m.Citation.message_id)
                    .where(m.Message.session_id == row.id)
                    .order_by(m.Citation.message_id, m.Citation.marker, m.Citation.id)):
                cites.setdefault(c.message_id, []).append(c)
            shown = {msg.id for msg in messages}
            drift = await check_citations(s, self.user_id, [
                c for mid, group in cites.items() if mid in shown for c in group])
            names = await self._collection_names(s, [row.id])
            attached = await _attachment_infos(s, row.id)
            siblings: dict[int | None, list[int]] = {}
            if not all_branches:  # rows are in id order, so each list is oldest first
                for r in rows:
                    siblings.setdefault(r.parent_id, []).append(r.id)
            return SessionDetail(
                session=to_summary(row, len(messages), names.get(row.id, ())),
                messages=tuple(to_message(msg, cites.get(msg.id, ()),
                                          siblings.get(msg.parent_id, ()),
                                          attached.get(msg.id, ()), drift)
                               for msg in messages))

    @staticmethod
    def _branch(session: m.Session, rows: Sequence[m.Message]) -> list[m.Message]:
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

    @retry_read
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

    async def rename(self, session_id: int, title: str) -> SessionSummary:
        """Give a session a new title (stored encrypted)."""
        title = title.strip()
        if not title:
            raise UsageError("a session title cannot be empty", "give a title with some text")
        async with self.db.write() as s:
            row = await self._owned(s, session_id)
            row.title = title
        return await self._summary(session_id)

    async def set_archived(self, session_id: int, archived: bool = True) -> SessionSummary:
        """Archive a session (hidden from ``list`` unless asked) or bring it back."""
        async with self.db.write() as s:
            row = await self._owned(s, session_id)
            row.archived = archived
        return await self._summary(session_id)

    async def _summary(self, session_id: int) -> SessionSummary:
        async with self.db.read() as s:
            row = await self._owned(s, session_id)
            count = await s.scalar(select(func.count()).select_from(m.Message)
                                   .where(m.Message.session_id == session_id)) or 0
            names = await self._collection_names(s, [session_id])
            return to_summary(row, count, names.get(session_id, ()))

    async def delete(self, session_id: int) -> SessionDeleted:
        """Delete a session, its messages and citations for good, and audit it.

        The audit row names the session by id and counts only: its title is private.
        """
        async with self.db.write() as s:
            await self._owned(s, session_id)
            messages = await s.scalar(select(func.count()).select_from(m.Message)
                                      .where(m.Message.session_id == session_id)) or 0
            citations = await s.scalar(
                select(func.count()).select_from(m.Citation)
                .join(m.Message, m.Message.id == m.Citation.message_id)
                .where(m.Message.session_id == session_id)) or 0
            await s.execute(delete(m.Session).where(m.Session.id == session_id,
                                                    m.Session.user_id == self.user_id))
            actor = await s.scalar(select(m.User.name).where(m.User.id == self.user_id))
            s.add(m.AuditLog(user_id=self.user_id, actor=actor or str(self.user_id),
                             action="session.delete", target=f"session:{session_id}",
                             detail={"messages": messages, "citations": citations}))
        await purge_wal(self.db)
        return SessionDeleted(id=session_id, messages=messages, citations=citations)

    async def export(self, session_id: int, fmt: str = "json") -> str:
        """The session as a document: ``json`` (every branch; ``import_`` reads it back
        exactly) or ``md`` (the active branch, for reading)."""
        from engine.history import transfer as session_io

        return await session_io.export_session(self, session_id, fmt)

    async def import_(self, data: str | bytes, *, name: str = "input") -> SessionImported:
        """Create a session from a JSON export, with new ids. A malformed file is refused
        with the place of the problem, and nothing is written."""
        from engine.history import transfer as session_io

        return await session_io.import_session(self, data, name=name)

    @retry_read
    async def search(self, query: str, *, limit: int = 50,
                     batch_size: int = 2000) -> HistorySearchResult:
        """Case-insensitive search of message contents and titles, newest first.

        Values are decrypted in memory, ``batch_size`` at a time, off the event loop.
        """
        from engine.history.search import search_history

        return await search_history(self.db, self.user_id, query, limit=limit,
                                    batch_size=batch_size)
