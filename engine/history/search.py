"""Search of the encrypted chat history (message contents and session titles).

The database holds only Fernet tokens, so it cannot search them. Tokens are read in
batches (keyset pagination, newest first, one short read transaction per batch), decrypted
in memory in a worker thread so the event loop stays free for the interface, matched
case-insensitively, and dropped. No plaintext is written anywhere, not even a temporary
index: that is the price of encryption at rest, and at 100k messages it stays under a
second or two here (``bench/sessions_bench.py``).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from datetime import datetime

from cryptography.fernet import InvalidToken
from sqlalchemy import Text, select, type_coerce

from engine.db import models as m
from engine.db.coltypes import Cipher, dialect_cipher
from engine.db.connect import Database
from engine.errors import UsageError
from engine.types import HistoryHit, HistorySearchResult

_SPACE = re.compile(r"\s+")


def decrypt_all(cipher: Cipher, tokens: Sequence[str | None]) -> list[str | None]:
    """Plaintexts of ``tokens``; None for a value that cannot be decrypted."""
    out: list[str | None] = []
    for token in tokens:
        try:
            out.append(cipher.decrypt(token) if token is not None else None)
        except (InvalidToken, ValueError):
            out.append(None)
    return out


def make_snippet(text: str, start: int, end: int, *, before: int = 60,
                 after: int = 80) -> tuple[str, int, int]:
    """The match with some context, whitespace flattened to one line, and where the match
    sits in it."""
    lo, hi = max(0, start - before), min(len(text), end + after)
    head = ("…" if lo > 0 else "") + _SPACE.sub(" ", text[lo:start]).lstrip()
    match = _SPACE.sub(" ", text[start:end])
    tail = _SPACE.sub(" ", text[end:hi]).rstrip() + ("…" if hi < len(text) else "")
    return head + match + tail, len(head), len(head) + len(match)


def _hit(pattern: re.Pattern[str], text: str, *, session_id: int, title: str,
         message_id: int | None, role: str | None, when: datetime) -> HistoryHit | None:
    found = pattern.search(text)
    if found is None:
        return None
    snippet, start, end = make_snippet(text, found.start(), found.end())
    return HistoryHit(session_id=session_id, session_title=title, message_id=message_id,
                      role=role, created_at=when, snippet=snippet, match_start=start,
                      match_end=end)


async def _batch(db: Database, user_id: int, before: int | None,
                 size: int) -> list[tuple[int, int, str, str | None]]:
    """(message id, session id, role, raw token) of the next ``size`` older messages."""
    query = (select(m.Message.id, m.Message.session_id, m.Message.role,
                    type_coerce(m.Message.content, Text)).where(m.Message.user_id == user_id))
    if before is not None:
        query = query.where(m.Message.id < before)
    async with db.read() as s:
        # Core rows, not ORM ones: the ORM's row handling costs a third more at 100k.
        conn = await s.connection()
        rows = (await conn.execute(query.order_by(m.Message.id.desc()).limit(size))).all()
    return [(row[0], row[1], row[2], row[3]) for row in rows]


async def search_history(db: Database, user_id: int, query: str, *, limit: int = 50,
                         batch_size: int = 2000) -> HistorySearchResult:
    """Titles first (most recently updated first), then messages, newest first."""
    needle = query.strip()
    if not needle:
        raise UsageError("the search text is empty", "give some text to look for")
    if limit < 1 or batch_size < 1:
        raise UsageError("limit and batch size must be at least 1")
    pattern = re.compile(re.escape(needle), re.IGNORECASE)
    cipher = dialect_cipher(db.engine.sync_engine.dialect)
    async with db.read() as s:
        sessions = (await s.execute(
            select(m.Session.id, type_coerce(m.Session.title, Text), m.Session.updated_at)
            .where(m.Session.user_id == user_id)
            .order_by(m.Session.updated_at.desc(), m.Session.id.desc()))).all()
    plain = await asyncio.to_thread(decrypt_all, cipher, [row[1] for row in sessions])
    titles = {row[0]: text if text is not None else "[unreadable title]"
              for row, text in zip(sessions, plain, strict=True)}
    scanned, unreadable = len(sessions), plain.count(None)
    hits = [hit for (sid, _, when), text in zip(sessions, plain, strict=True) if text is not None
            and (hit := _hit(pattern, text, session_id=sid, title=text, message_id=None,
                             role=None, when=when)) is not None][:limit]
    found: list[tuple[int, int, str, str]] = []  # message id, session id, role, text
    # Small batches first: a common word is found in the newest messages at once.
    step, size = 0, min(batch_size, 250)
    pending = asyncio.ensure_future(_batch(db, user_id, None, size)) \
        if len(hits) < limit else None
    try:
        while pending is not None:
            rows, asked = await pending, size
            step += 1
            size = min(batch_size, 250 * 4**step)
            # The next batch is read while this one is decrypted (SQLite and asyncpg do their
            # work outside the GIL).
            pending = asyncio.ensure_future(_batch(db, user_id, rows[-1][0], size)) \
                if len(rows) == asked else None
            texts = await asyncio.to_thread(decrypt_all, cipher, [row[3] for row in rows])
            scanned += len(rows)
            unreadable += texts.count(None)
            found += [(mid, sid, role, text) for (mid, sid, role, _), text
                      in zip(rows, texts, strict=True) if text is not None and pattern.search(text)]
            if len(hits) + len(found) >= limit:
                if pending is not None:
                    await pending  # let it finish rather than cancel a query half way
                break
    finally:
        if pending is not None and not pending.done():  # cancelled or failed meanwhile
            pending.cancel()
    found = found[:limit - len(hits)]
    async with db.read() as s:  # timestamps of the hits only: converting 100k costs 0.2 s
        when = dict((await s.execute(select(m.Message.id, m.Message.created_at).where(
            m.Message.id.in_([f[0] for f in found])))).all()) if found else {}
    for mid, sid, role, text in found:
        hit = _hit(pattern, text, session_id=sid, title=titles.get(sid, ""), message_id=mid,
                   role=role, when=when[mid])
        assert hit is not None
        hits.append(hit)
    return HistorySearchResult(query=needle, hits=tuple(hits), scanned=scanned,
                               unreadable=unreadable, truncated=len(hits) >= limit)
