"""The verification pass ``db copy`` and ``restore`` end with: per table, the source rows
(as the target must hold them, ids translated) and the target rows with those keys, both
digested value by value in the same order. Rows matched to an existing row by unique key
(a user by name) are compared on that key only: the rest is the target's own.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from engine.db.connect import Database
from engine.portable import target as tg
from engine.portable.idmap import IdMap
from engine.portable.plan import TablePlan, kept_if_present, row_bytes, source_select
from engine.portable.results import TableCount


def _compared(plan: TablePlan, ids: IdMap, old_key: Any) -> list[str]:
    if kept_if_present(plan):
        return plan.pk
    if plan.offset_pk and plan.uniques and ids.is_exception(plan.name, old_key):
        return list(plan.uniques[0])
    return plan.columns


async def _extra_rows(tconn: AsyncConnection, plan: TablePlan, ids: IdMap,
                      source_max: int | None, found_in_range: int) -> int:
    """Target rows in the copied id range that the source does not have (a row deleted
    from the source between two runs of a resumed copy, or written by someone else)."""
    if not plan.offset_pk or not source_max:
        return 0
    offset = ids.offsets.get(plan.name, 0)
    col = plan.table.c[plan.offset_pk]
    there = int(await tconn.scalar(select(func.count()).select_from(plan.table).where(
        col > offset, col <= offset + source_max)) or 0)
    return max(there - found_in_range, 0)


async def verify_table(sconn: AsyncConnection, tgt: Database, plan: TablePlan,
                       where: ColumnElement[bool] | None, ids: IdMap, count: TableCount,
                       source_max: int | None, batch: int,
                       exprs: dict[str, Any] | None = None) -> TableCount:
    src_hash, tgt_hash = hashlib.sha256(), hashlib.sha256()
    found = rows_seen = in_range = 0
    offset = ids.offsets.get(plan.name, 0)
    last = None
    async with tgt.engine.connect() as tconn:
        while True:
            rows = [dict(r) for r in (await sconn.execute(
                source_select(plan, where, last, batch, exprs))).mappings()]
            if not rows:
                break
            mapped = [ids.map_row(plan, r) for r in rows]
            there = await tg.fetch_by_keys(tconn, plan, [plan.key_of(r) for r in mapped])
            for old, new in zip(rows, mapped, strict=True):
                cols = _compared(plan, ids, old[plan.pk[0]])
                src_hash.update(row_bytes(new, cols))
                other = there.get(plan.key_of(new))
                if other is None:
                    tgt_hash.update(b"missing")
                    continue
                found += 1
                if plan.offset_pk and new[plan.offset_pk] > offset:
                    in_range += 1
                tgt_hash.update(row_bytes(other, cols))
            rows_seen += len(rows)
            last = list(plan.key_of(rows[-1]))
        found += await _extra_rows(tconn, plan, ids, source_max, in_range)
    return replace(count, source_rows=rows_seen, target_rows=found,
                   source_digest=src_hash.hexdigest(), target_digest=tgt_hash.hexdigest())
