"""Message trees: the active branch, and adding, switching and listing branches.

A session's messages form a tree through ``parent_id``. The active branch runs from a root
to ``sessions.current_message_id``. Regenerating an answer adds a sibling answer under the
same question; editing a question adds a sibling question under the same parent (a new root
when the first question is edited). Nothing is deleted: the old branch stays reachable
through ``siblings`` and ``switch``.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.db.coltypes import utcnow
from engine.db.connect import Database
from engine.errors import NotFound, UsageError
from engine.history.sessions import to_message
from engine.types import Message, SessionDetail


@dataclass(frozen=True, slots=True)
class LastExchange:
    """The last question of the active branch and what came before it."""

    question: Message
    history: tuple[Message, ...]  # the branch before the question, oldest first
    answer: Message | None  # the answer after it on the branch, if any


def last_exchange(detail: SessionDetail) -> LastExchange:
    """The last question on a session's active branch, its history and its answer."""
    path = detail.messages
    for index in range(len(path) - 1, -1, -1):
        if path[index].role == "user":
            return LastExchange(question=path[index], history=tuple(path[:index]),
                                answer=path[index + 1] if index + 1 < len(path) else None)
    raise UsageError(f"session {detail.session.id} has no question yet",
                     "ask one first: parley ask --session ID QUESTION")


class Branches:
    """Branch operations on the sessions of one user."""

    def __init__(self, db: Database, user_id: int) -> None:
        self.db = db
        self.user_id = user_id

    async def owned(self, s: AsyncSession, session_id: int) -> m.Session:
        """The session row, or ``NotFound`` when this user has no such session."""
        row = await s.scalar(select(m.Session).where(m.Session.id == session_id,
                                                     m.Session.user_id == self.user_id))
        if row is None:
            raise NotFound(f"no session with id {session_id}", "list them: parley sessions list")
        return row

    async def _tree(self, s: AsyncSession, session_id: int) -> dict[int, m.Message]:
        rows = await s.scalars(select(m.Message).where(m.Message.session_id == session_id,
                                                       m.Message.user_id == self.user_id))
        return {row.id: row for row in rows}

    async def add_in(self, s: AsyncSession, session: m.Session, role: str, content: str, *,
                     parent_id: int | None, status: str = "complete",
                     model: str | None = None, provider: str | None = None,
                     error: str | None = None) -> m.Message:
        """Add a message under ``parent_id`` (None: a new root) and make it the active leaf."""
        row = m.Message(user_id=self.user_id, session_id=session.id, parent_id=parent_id,
                        role=role, content=content, status=status, model=model,
                        provider=provider, error=error)
        s.add(row)
        await s.flush()
        session.current_message_id = row.id
        session.updated_at = utcnow()
        return row

    async def siblings(self, session_id: int, message_id: int) -> list[Message]:
        """The alternatives of a message (itself included), oldest first: the answers of
        one question, or the versions of an edited question."""
        async with self.db.read() as s:
            await self.owned(s, session_id)
            tree = await self._tree(s, session_id)
        target = tree.get(message_id)
        if target is None:
            raise NotFound(f"no message {message_id} in session {session_id}")
        return [to_message(row) for row in sorted(tree.values(), key=lambda r: r.id)
                if row.parent_id == target.parent_id]

    async def switch(self, session_id: int, message_id: int) -> Message:
        """Make the branch through ``message_id`` active; it continues to its newest leaf."""
        async with self.db.write() as s:
            session = await self.owned(s, session_id)
            tree = await self._tree(s, session_id)
            cursor = tree.get(message_id)
            if cursor is None:
                raise NotFound(f"no message {message_id} in session {session_id}")
            children: dict[int, list[m.Message]] = {}
            for row in tree.values():
                if row.parent_id is not None:
                    children.setdefault(row.parent_id, []).append(row)
            while children.get(cursor.id):
                cursor = max(children[cursor.id], key=lambda r: r.id)
            session.current_message_id = cursor.id
            session.updated_at = utcnow()
            return to_message(cursor)
