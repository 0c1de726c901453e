"""A copy's progress on its target: the state rows, the id offsets and the id map.

Every row of ``parley_copy_state`` / ``parley_copy_map`` names who ran the copy
(``user_id``, migration ``0011_copy_state_owner``) and is written and read for that user
only: on a PostgreSQL team row-level security holds a member to their own rows, and the
queries here say the same on every backend, so the owner's copy (which sees every row)
never picks up a member's. NULL is a copy run by a role that has no user row on the target
(the owner filling a new database, a superuser, any SQLite file): the owner's and SQLite's
reads include it, a member's never do.

A member's copy ids carry their role (``runner_copy_id``), so two members copying the same
source (restoring one archive, say) never share a copy id.

Ids: into a table that is empty the source's ids are kept, even when its sequence gave out
ids before (rows inserted, then deleted): the table is locked while that is decided and
its sequence is moved past the last kept id, so later inserts never collide. A member
cannot see whether a table is empty (others' rows are invisible), so a member's copy, and
any copy into a table holding rows, takes a block of the sequence instead
(``access.reserve_block``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.elements import ColumnElement

from engine.db import models as m
from engine.db.coltypes import utcnow
from engine.db.connect import Database
from engine.portable.access import Access, reserve_block, sequence_of
from engine.portable.idmap import IdMap
from engine.portable.plan import TablePlan
from engine.portable.results import CopyRefused


@dataclass(frozen=True)
class Runner:
    """Whose copy-state rows a copy writes and reads."""

    user_id: int | None  # the target's users.id of the role running the copy
    sees_all: bool  # the schema owner, a superuser, SQLite

    @classmethod
    def of(cls, target: Access) -> Runner:
        if target.backend != "postgresql":
            return cls(None, True)  # no roles: whoever opens the file sees every row
        return cls(target.user_id, target.sees_all)

    def mine(self, column: Any) -> ColumnElement[bool]:
        if self.user_id is None:
            return column.is_(None)  # type: ignore[no-any-return]
        if not self.sees_all:
            return column == self.user_id  # type: ignore[no-any-return]
        return or_(column == self.user_id, column.is_(None))


def runner_copy_id(copy_id: str, target: Access) -> str:
    """The copy id as this role's: a member's carries a tag of their role name."""
    if target.backend != "postgresql" or target.sees_all:
        return copy_id
    tag = hashlib.sha256(str(target.role).encode()).hexdigest()[:12]
    return f"{copy_id[:40]}-{tag}"


def _state_of(runner: Runner, copy_id: str) -> ColumnElement[bool]:
    return (m.CopyState.copy_id == copy_id) & runner.mine(m.CopyState.user_id)


async def started(conn: AsyncConnection, copy_id: str, runner: Runner) -> bool:
    return bool(await conn.scalar(select(func.count()).select_from(m.CopyState).where(
        _state_of(runner, copy_id))))


async def load_state(conn: AsyncConnection, copy_id: str, ids: IdMap, runner: Runner
                     ) -> tuple[dict[str, m.CopyState], Runner] | None:
    """This runner's state of the copy (and the runner as the state was started: an owner
    who had no user row then keeps writing its rows under none)."""
    rows = (await conn.execute(select(m.CopyState.__table__).where(
        _state_of(runner, copy_id)))).mappings().all()
    if not rows:
        return None
    runner = Runner(rows[0]["user_id"], runner.sees_all)
    state = {r["table_name"]: m.CopyState(**dict(r)) for r in rows}
    for r in rows:
        ids.offsets[r["table_name"]] = int(r["id_offset"])
    for table, old, new in (await conn.execute(
            select(m.CopyMap.table_name, m.CopyMap.old_id, m.CopyMap.new_id)
            .where(m.CopyMap.copy_id == copy_id, runner.mine(m.CopyMap.user_id)))).all():
        ids.exceptions.setdefault(table, {})[int(old)] = int(new)
    return state, runner


async def _sequence(conn: AsyncConnection, plan: TablePlan) -> str | None:
    if not plan.offset_pk:
        return None
    return await sequence_of(conn, plan.name, plan.offset_pk)


async def _claim(conn: AsyncConnection, plan: TablePlan, seq: str, low: int, high: int,
                 *, empty: bool) -> bool:
    """Take ids ``low+1..high`` of a PostgreSQL table as they are, if no row holds one
    (``empty``: if the table holds no row at all), moving the sequence past them.

    The table is locked against writers until the caller's transaction ends, so no one
    inserts between the look and the ``setval``; once the sequence is past ``high``,
    inserts by others get ids above the claimed ones."""
    col = plan.table.c[plan.offset_pk]  # type: ignore[index]
    await conn.execute(text(f'LOCK TABLE "{plan.name}" IN SHARE ROW EXCLUSIVE MODE'))
    stmt = select(col).limit(1)
    if not empty:
        stmt = stmt.where(col > low, col <= high)
    if await conn.scalar(stmt) is not None:
        return False
    await conn.execute(text(f"SELECT setval('{seq}', greatest(:high, last_value), true) "
                            f"FROM {seq}"), {"high": high})
    return True


async def start_state(conn: AsyncConnection, copy_id: str, plans: list[TablePlan],
                      source_max: dict[str, int], ids: IdMap, runner: Runner, *,
                      skip: Sequence[str] = ()) -> dict[str, m.CopyState]:
    """Pick each table's id offset and record the state rows (see the module docstring):
    0 into an empty table; past the largest id on SQLite; else a block of the sequence."""
    state = {}
    for plan in plans:
        offset = 0
        top = source_max.get(plan.name, 0)
        if plan.offset_pk and plan.name not in skip:
            seq = await _sequence(conn, plan)
            if seq and top:
                kept = runner.sees_all and await _claim(conn, plan, seq, 0, top, empty=True)
                offset = 0 if kept else await reserve_block(conn, seq, top)
            elif not seq:
                col = plan.table.c[plan.offset_pk]
                offset = int(await conn.scalar(select(func.coalesce(func.max(col), 0))) or 0)
        ids.offsets[plan.name] = offset
        state[plan.name] = m.CopyState(
            copy_id=copy_id, table_name=plan.name, id_offset=offset, id_reserved=offset + top,
            last_key=None, copied=0, skipped=0, done=False, updated_at=utcnow(),
            user_id=runner.user_id)
    await conn.execute(insert(m.CopyState), [
        {c.name: getattr(s, c.name) for c in m.CopyState.__table__.columns}
        for s in state.values()])
    return state


async def extend_reservations(conn: AsyncConnection, copy_id: str, plans: list[TablePlan],
                              source_max: dict[str, int], state: dict[str, m.CopyState],
                              runner: Runner, *, skip: Sequence[str] = ()) -> None:
    """A resumed copy whose source grew: take the ids after the block reserved before,
    if no one took them meanwhile (else the new rows would collide: refuse)."""
    for plan in plans:
        row = state.get(plan.name)
        if row is None or plan.name in skip:
            continue
        need = int(row.id_offset or 0) + source_max.get(plan.name, 0)
        have = int(row.id_reserved or 0)
        seq = await _sequence(conn, plan)
        if not seq or need <= have:
            continue
        last, called = (await conn.execute(text(f"SELECT last_value, is_called FROM {seq}"))
                        ).one()
        if int(last) == have or not called:
            ok = await reserve_block(conn, seq, need - have) == have
        else:  # others took ids since: the owner may still claim the range if it is free
            ok = runner.sees_all and await _claim(conn, plan, seq, have, need, empty=False)
        if not ok:
            raise CopyRefused(f"the source's {plan.name} grew since this copy began and the "
                              "target gave those ids to other rows meanwhile",
                              "add --merge to copy what is missing with new ids")
        row.id_reserved = need
        await conn.execute(update(m.CopyState).where(
            _state_of(runner, copy_id), m.CopyState.table_name == plan.name).values(
            id_reserved=need))


async def save_progress(conn: AsyncConnection, copy_id: str, plan: TablePlan,
                        row: m.CopyState, exceptions: dict[int, int], runner: Runner) -> None:
    if exceptions:
        await conn.execute(insert(m.CopyMap), [
            {"copy_id": copy_id, "table_name": plan.name, "old_id": o, "new_id": n,
             "user_id": runner.user_id} for o, n in exceptions.items()])
    await conn.execute(update(m.CopyState).where(
        _state_of(runner, copy_id), m.CopyState.table_name == plan.name).values(
        last_key=row.last_key, copied=row.copied, skipped=row.skipped, done=row.done,
        updated_at=utcnow()))


async def finish_state(tgt: Database, copy_id: str, runner: Runner) -> None:
    async with tgt.engine.begin() as conn:
        await conn.execute(update(m.CopyState).where(_state_of(runner, copy_id))
                           .values(done=True, updated_at=utcnow()))


async def forget_state(tgt: Database, copy_id: str, runner: Runner) -> None:
    async with tgt.engine.begin() as conn:
        await conn.execute(delete(m.CopyMap).where(m.CopyMap.copy_id == copy_id,
                                                   runner.mine(m.CopyMap.user_id)))
        await conn.execute(delete(m.CopyState).where(_state_of(runner, copy_id)))
