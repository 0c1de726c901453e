"""``parley sessions verify``: the state of every stored citation of a session, or of all."""

from __future__ import annotations

from typing import TYPE_CHECKING

from sqlalchemy import select

from engine.db import models as m
from engine.drift.check import check_citations
from engine.errors import NotFound
from engine.history.sessions import _citation

if TYPE_CHECKING:
    from engine.facade import Engine
    from engine.types import CitationCheck

_BATCH = 2_000


async def verify_citations(engine: Engine, session_id: int | None = None
                           ) -> list[CitationCheck]:
    """Every citation of the session (all sessions when None), oldest answer first, with
    its drift. Raises ``NotFound`` for a session the user does not have."""
    from engine.types import CitationCheck

    db = engine._require_db()
    out: list[CitationCheck] = []
    async with db.read() as s:
        if session_id is not None and await s.scalar(select(m.Session.id).where(
                m.Session.id == session_id, m.Session.user_id == engine.user_id)) is None:
            raise NotFound(f"no session with id {session_id}", "see 'parley sessions list'")
        stmt = (select(m.Citation, m.Message.session_id)
                .join(m.Message, m.Message.id == m.Citation.message_id)
                .where(m.Citation.user_id == engine.user_id)
                .order_by(m.Citation.message_id, m.Citation.marker, m.Citation.id))
        if session_id is not None:
            stmt = stmt.where(m.Message.session_id == session_id)
        rows = (await s.execute(stmt)).all()
        for first in range(0, len(rows), _BATCH):
            batch = rows[first:first + _BATCH]
            drift = await check_citations(s, engine.user_id, [c for c, _ in batch])
            out += [CitationCheck(sid, c.message_id, _citation(c, drift)) for c, sid in batch]
    return out
