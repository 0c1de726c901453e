"""Where a source id lands on the target: a per-table offset, except for matched rows.

Into an empty table the offset is 0 (ids kept). Into one that holds rows it is the table's
largest id (and PostgreSQL's sequence is moved past the copied range first), so copied ids
never collide and keep their order; no per-row map is needed, whatever the size. Rows a
``--merge`` (or the users table, always) matched to a row already on the target are the
exceptions, kept in ``parley_copy_map``.
"""

from __future__ import annotations

from typing import Any

from engine.portable.plan import USERS, TablePlan


class IdMap:
    def __init__(self, plans: dict[str, TablePlan]) -> None:
        self.plans = plans
        self.offsets: dict[str, int] = {}
        self.exceptions: dict[str, dict[int, int]] = {}
        self.renames: dict[str, str] = {}  # source user name -> target user name

    def map(self, table: str, old: Any) -> Any:
        if old is None:
            return None
        plan = self.plans.get(table)
        if plan is None:
            return old
        if plan.offset_pk:
            found = self.exceptions.get(table, {}).get(old)
            return found if found is not None else old + self.offsets.get(table, 0)
        if len(plan.pk) == 1 and plan.pk[0] in plan.refs and plan.refs[plan.pk[0]] != table:
            return self.map(plan.refs[plan.pk[0]], old)
        return old

    def map_row(self, plan: TablePlan, row: dict[str, Any]) -> dict[str, Any]:
        """The row as the target stores it: its own id and every reference translated."""
        out = dict(row)
        if plan.name == USERS and row.get("name") in self.renames:
            out["name"] = self.renames[row["name"]]
        for col, ref in plan.refs.items():
            out[col] = self.map(ref, row[col])
        if plan.offset_pk:
            out[plan.offset_pk] = self.map(plan.name, row[plan.offset_pk])
        return out

    def is_exception(self, table: str, old: Any) -> bool:
        return old in self.exceptions.get(table, {})
