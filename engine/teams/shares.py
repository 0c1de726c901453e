"""Collections shared by their owner: which collections a user sees, and finding one by name.

A user's own collections are named as always (``handbook``); another user's, shared with
them, as ``owner/name`` (``alice/handbook``), or by the bare name when no collection of
their own and no other shared one has it. On PostgreSQL the RLS policies decide what is
visible; these queries say the same thing explicitly, so they also hold on SQLite (where
nothing is ever shared).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import Integer, case, exists, func, literal, or_, select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.db import models as m
from engine.errors import NotFound, ParleyError, UsageError


@dataclass(frozen=True)
class Visible:
    """A collection the user may search: their own (``owner`` None) or shared with them."""

    row: m.Collection
    owner: str | None = None
    writable: bool = True
    has_vectors: bool = False  # vectors of its live generation exist (when asked for)

    @property
    def label(self) -> str:
        """How the user names it: ``name`` if theirs, ``owner/name`` if shared."""
        return self.row.name if self.owner is None else f"{self.owner}/{self.row.name}"

    @property
    def access(self) -> str:
        return "owner" if self.owner is None else ("write" if self.writable else "read")


async def visible(s: AsyncSession, user_id: int, *, vectors: bool = False) -> list[Visible]:
    """The user's collections by name, then those shared with them by owner and name;
    ``vectors``: also whether each has vectors of its live generation (for a search).

    One statement (a search resolves its scope with it on every query)."""
    write = (select(func.max(m.CollectionShare.can_write.cast(Integer)))
             .where(m.CollectionShare.collection_id == m.Collection.id,
                    or_(m.CollectionShare.grantee_id == user_id,
                        m.CollectionShare.grantee_id.is_(None)))
             .scalar_subquery())
    live = exists().where(m.ChunkEmbedding.collection_id == m.Collection.id,
                          m.ChunkEmbedding.generation == m.Collection.vector_generation) \
        if vectors else literal(False)
    mine = m.Collection.user_id == user_id
    rows = await s.execute(
        select(m.Collection, m.User.name, write, live)
        .join(m.User, m.User.id == m.Collection.user_id)
        .where(or_(mine, write.is_not(None)))
        .order_by(case((mine, 0), else_=1), m.User.name, m.Collection.name))
    return [Visible(row, None if row.user_id == user_id else owner,
                    row.user_id == user_id or bool(can_write), bool(has))
            for row, owner, can_write, has in rows]


def pick(found: Sequence[Visible], name: str) -> Visible:
    """The collection ``name`` means: the user's own, ``owner/name``, or a shared one whose
    bare name is unambiguous. Raises ``NotFound`` or, for an ambiguous name, ``UsageError``."""
    for item in found:
        if item.owner is None and item.row.name == name:
            return item
    for item in found:
        if item.owner is not None and item.label == name:
            return item
    matches = [item for item in found if item.owner is not None and item.row.name == name]
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UsageError(f"collection name '{name}' is ambiguous: "
                         f"{', '.join(item.label for item in matches)} are shared with you",
                         "name it as owner/name")
    raise NotFound(f"no collection named '{name}'", "see 'parley collections list'")


async def resolve(s: AsyncSession, user_id: int, names: Sequence[str], *,
                  quote: bool = True, vectors: bool = False) -> list[Visible]:
    """``pick`` for each name, in order, without repeats. Missing names are reported
    together (``quote``: each in quotes, as search words it); ``vectors`` as in
    ``visible``."""
    found = await visible(s, user_id, vectors=vectors)
    out: list[Visible] = []
    missing = []
    for name in dict.fromkeys(names):
        try:
            item = pick(found, name)
        except NotFound:
            missing.append(name)
            continue
        if all(item.row.id != seen.row.id for seen in out):
            out.append(item)
    if missing:
        shown = map(repr, missing) if quote else missing
        raise NotFound(f"no collection named {', '.join(shown)}",
                       "see the collections with: parley collections list")
    return out


async def ingest_target(s: AsyncSession, user_id: int, name: str) -> Visible | None:
    """The collection shared with the user that ``name`` means, if they may ingest into it;
    ``ParleyError`` for a read-only share; None when nothing shared is called that."""
    found = [v for v in await visible(s, user_id) if v.owner is not None]
    try:
        item = pick(found, name)
    except NotFound:
        return None
    if not item.writable:
        raise ParleyError(f"collection '{item.label}' is shared with you read-only: you "
                          "cannot ingest into it",
                          f"ask {item.owner} to share it with --write, or ingest into a "
                          "collection of your own")
    return item
