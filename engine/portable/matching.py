"""Matching source rows to rows already on the target (``--merge``, users by name, one
row per user), and fixing references to rows copied later once their ids are known.

A mixin of ``Copier``: it reads the copier's plans, id map and flags.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.db.connect import Database
from engine.portable import target as tg
from engine.portable.plan import USERS, TablePlan, kept_if_present, row_digest

if TYPE_CHECKING:
    from engine.portable.idmap import IdMap


class Matching:
    plans: list[TablePlan]
    ids: IdMap
    merge: bool

    async def _content_index(self, conn: AsyncConnection, plan: TablePlan) -> dict[bytes, int]:
        """Digests of the rows the target held before this copy (for ``--merge``)."""
        assert plan.offset_pk
        cols = self._content_columns(plan)
        stmt = select(*(plan.table.c[c] for c in plan.columns)).where(
            plan.table.c[plan.offset_pk] <= self.ids.offsets.get(plan.name, 0))
        index = {}
        for r in (await conn.execute(stmt)).mappings():
            index[row_digest(r, cols)] = r[plan.offset_pk]
        return index

    async def _match(self, tgt: Database, plan: TablePlan, rows: list[dict[str, Any]],
                     index: dict[bytes, int] | None
                     ) -> tuple[list[dict[str, Any]], dict[int, int]]:
        """The rows to insert (mapped) and the source ids matched to existing rows.

        Users are always matched by name (an identity is never duplicated); with ``--merge``
        every table's rows are matched by unique key, then by content."""
        out: list[dict[str, Any]] = []
        matched: dict[int, int] = {}
        by_unique = plan.name == USERS or self.merge or kept_if_present(plan)
        if not by_unique:
            return [self.ids.map_row(plan, r) for r in rows], matched
        async with tgt.engine.connect() as conn:
            if not plan.offset_pk:  # a composite key: skip keys already there
                mapped = [self.ids.map_row(plan, r) for r in rows]
                there = await tg.fetch_by_keys(conn, plan, [plan.key_of(r) for r in mapped])
                return [r for r in mapped if plan.key_of(r) not in there], matched
            pk = plan.offset_pk
            for row in rows:  # one by one: a row may refer to one matched just before
                new = self.ids.map_row(plan, row)
                hit = await self._unique_hit(conn, plan, new)
                if hit is None and index is not None:
                    hit = index.get(row_digest(new, self._content_columns(plan)))
                if hit is None:
                    out.append(new)
                else:
                    matched[row[pk]] = hit
                    self.ids.exceptions.setdefault(plan.name, {})[row[pk]] = hit
        return out, matched

    def _forward(self, plan: TablePlan) -> dict[str, str]:
        """References to tables copied later (a session's current message): their ids
        are known only afterwards, so they are compared without and fixed up at the end."""
        order = [p.name for p in self.plans]
        here = order.index(plan.name)
        return {c: ref for c, ref in plan.refs.items()
                if ref in order and order.index(ref) > here}

    def _content_columns(self, plan: TablePlan) -> list[str]:
        skip = {plan.offset_pk, *self._forward(plan)}
        return [c for c in plan.columns if c not in skip]

    async def _fix_forward(self, tgt: Database) -> None:
        """Rows inserted with a forward reference to a row that a merge matched."""
        for plan in self.plans:
            if not plan.offset_pk:
                continue
            pk = plan.table.c[plan.offset_pk]
            for col, ref in self._forward(plan).items():
                pairs = self.ids.exceptions.get(ref, {})
                if not pairs:
                    continue
                async with tgt.engine.begin() as conn:
                    for old, new in pairs.items():
                        await conn.execute(update(plan.table).where(
                            plan.table.c[col] == old + self.ids.offsets.get(ref, 0),
                            pk > self.ids.offsets.get(plan.name, 0)).values({col: new}))

    async def _unique_hit(self, conn: AsyncConnection, plan: TablePlan,
                          row: dict[str, Any]) -> int | None:
        assert plan.offset_pk
        for cols in plan.uniques:
            if any(row[c] is None for c in cols):
                continue
            stmt = select(plan.table.c[plan.offset_pk]).where(
                *(plan.table.c[c] == row[c] for c in cols)).limit(1)
            hit = await conn.scalar(stmt)
            if hit is not None:
                return int(hit)
        return None
