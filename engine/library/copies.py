"""Identical copies of a document: the other documents pointing at its chunk set."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m


async def copies_of(s: AsyncSession, user_id: int, set_ids: Sequence[int | None]
                    ) -> dict[int, list[tuple[int, str, str]]]:
    """chunk set -> (document id, collection, path) of every document of ``user_id``
    holding it, for the sets held by more than one document."""
    wanted = sorted({i for i in set_ids if i is not None})
    out: dict[int, list[tuple[int, str, str]]] = {}
    for first in range(0, len(wanted), 500):
        shared = (select(m.Document.chunk_set_id)
                  .where(m.Document.chunk_set_id.in_(wanted[first:first + 500]))
                  .group_by(m.Document.chunk_set_id).having(func.count() > 1))
        rows = await s.execute(
            select(m.Document.chunk_set_id, m.Document.id, m.Collection.name,
                   m.Document.source_path)
            .join(m.Collection, m.Collection.id == m.Document.collection_id)
            .where(m.Document.chunk_set_id.in_(shared), m.Document.user_id == user_id)
            .order_by(m.Collection.name, m.Document.source_path))
        for set_id, doc_id, name, path in rows:
            out.setdefault(set_id, []).append((doc_id, name, path))
    return out
