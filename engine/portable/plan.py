"""What to copy, derived from ``Base.metadata``: tables in dependency order, their columns
read raw, primary keys, references to remap, and a canonical digest of a row.

The only tables named here are the special ones: ``parley_meta`` (key check value, copied
by ``engine/portable/meta.py``) and the copy-state tables themselves. Everything else is
generic, so a table added by a later migration is copied without touching this package.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import numpy as np
from sqlalchemy import (Column, Integer, MetaData, Table, and_, case, null, or_, select,
                        tuple_)
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.types import BigInteger, SmallInteger, TypeDecorator, TypeEngine

from engine.db.coltypes import EncryptedText
from engine.db.models import Base

META_TABLE = "parley_meta"
STATE_TABLES = ("parley_copy_state", "parley_copy_map")
SPECIAL = {META_TABLE, *STATE_TABLES}
USERS = "users"  # identities: matched by name on the target, never duplicated


def is_encrypted(type_: TypeEngine[Any]) -> bool:
    """Columns whose value is a token: copied raw, never decrypted."""
    return isinstance(type_, EncryptedText) or bool(getattr(type_, "parley_encrypted", False))


def raw_type(type_: TypeEngine[Any]) -> TypeEngine[Any]:
    if is_encrypted(type_):
        assert isinstance(type_, TypeDecorator)
        return type_.impl_instance  # the stored token as text: the cipher is never called
    return type_


def _is_int(type_: TypeEngine[Any]) -> bool:
    base = type_.impl_instance if isinstance(type_, TypeDecorator) else type_
    return isinstance(base, Integer | BigInteger | SmallInteger)


@dataclass
class TablePlan:
    """One table as the copy sees it."""

    name: str
    table: Table  # the same columns with encrypted types replaced by their storage type
    columns: list[str]
    pk: list[str]
    refs: dict[str, str] = field(default_factory=dict)  # column -> referenced table
    offset_pk: str | None = None  # a single integer key that is not itself a reference
    uniques: list[tuple[str, ...]] = field(default_factory=list)
    vector_columns: list[str] = field(default_factory=list)

    def pk_cols(self) -> list[Column[Any]]:
        return [self.table.c[c] for c in self.pk]

    def key_of(self, row: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(row[c] for c in self.pk)

    def after(self, last: Sequence[Any] | None) -> ColumnElement[bool] | None:
        """Rows after ``last`` in key order (keyset pagination)."""
        if last is None:
            return None
        if len(self.pk) == 1:
            return self.pk_cols()[0] > last[0]
        return tuple_(*self.pk_cols()) > tuple_(*last)

    def key_in(self, keys: list[tuple[Any, ...]]) -> ColumnElement[bool]:
        if len(self.pk) == 1:
            return self.pk_cols()[0].in_([k[0] for k in keys])
        # OR of ANDs: row-value IN lists are not portable across drivers
        return or_(*(and_(*(c == v for c, v in zip(self.pk_cols(), k, strict=True)))
                     for k in keys))


def _refs(table: Table) -> dict[str, str]:
    refs: dict[str, str] = {}
    for col in table.columns:
        for fk in col.foreign_keys:
            refs[col.name] = fk.column.table.name
        soft = col.info.get("refers_to")  # a reference kept without a foreign key
        if soft and col.name not in refs:
            refs[col.name] = str(soft).split(".", 1)[0]
    return refs


def build_plans(metadata: MetaData | None = None) -> list[TablePlan]:
    """Every copied table, parents before children."""
    metadata = metadata or Base.metadata
    plans = []
    for table in metadata.sorted_tables:
        if table.name in SPECIAL:
            continue
        cols = [c for c in table.columns if c.computed is None]
        raw = Table(table.name, MetaData(),
                    *(Column(c.name, raw_type(c.type), primary_key=c.primary_key,
                             autoincrement=False) for c in cols))
        pk = [c.name for c in table.primary_key.columns]
        refs = _refs(table)
        offset_pk = None
        if len(pk) == 1 and pk[0] not in refs and _is_int(table.c[pk[0]].type):
            offset_pk = pk[0]
        uniques = [tuple(c.name for c in con.columns) for con in table.constraints
                   if con.__class__.__name__ == "UniqueConstraint"]
        uniques += [tuple(c.name for c in ix.columns) for ix in table.indexes if ix.unique]
        uniques += [(c.name,) for c in cols if c.unique and not c.primary_key
                    and (c.name,) not in uniques]
        vectors = [c.name for c in cols if type(c.type).__name__ == "Embedding"]
        plans.append(TablePlan(table.name, raw, [c.name for c in cols], pk, refs, offset_pk,
                               uniques, vectors))
    return plans


# -- canonical content ------------------------------------------------------------------------
def _time(value: datetime) -> bytes:
    aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return b"T" + aware.isoformat().encode()


_FAST: dict[type, Any] = {
    type(None): lambda v: b"N",
    bool: lambda v: b"B1" if v else b"B0",
    int: lambda v: b"I%d" % v,
    float: lambda v: b"F" + repr(v).encode(),
    str: lambda v: b"S" + v.encode("utf-8", "surrogatepass"),
    bytes: lambda v: b"X" + v,
    datetime: _time,
    np.ndarray: lambda v: b"V" + np.asarray(v, dtype=np.float32).tobytes(),
}


def canon(value: Any) -> bytes:
    """A backend-independent encoding of one value (tokens, vectors, texts, times)."""
    fast = _FAST.get(type(value))
    if fast is not None:
        return fast(value)  # type: ignore[no-any-return]
    if value is None:
        return b"N"
    if isinstance(value, bool):
        return b"B1" if value else b"B0"
    if isinstance(value, int):
        return b"I" + str(value).encode()
    if isinstance(value, float):
        return b"F" + repr(value).encode()
    if isinstance(value, str):
        return b"S" + value.encode("utf-8", "surrogatepass")
    if isinstance(value, bytes | bytearray | memoryview):
        return b"X" + bytes(value)
    if isinstance(value, datetime):
        aware = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
        return b"T" + aware.isoformat().encode()
    if isinstance(value, np.ndarray):
        return b"V" + np.asarray(value, dtype=np.float32).tobytes()
    if hasattr(value, "to_numpy"):
        return b"V" + np.asarray(value.to_numpy(), dtype=np.float32).tobytes()
    return b"J" + json.dumps(value, sort_keys=True, separators=(",", ":"),
                             default=str).encode()


def row_bytes(row: dict[str, Any], columns: Iterable[str]) -> bytes:
    """The row's values, canonical and length-prefixed (unambiguous when concatenated)."""
    parts = []
    for c in columns:
        v = canon(row[c])
        parts.append(len(v).to_bytes(4, "little"))
        parts.append(v)
    return b"".join(parts)


def row_digest(row: dict[str, Any], columns: Iterable[str]) -> bytes:
    return hashlib.blake2b(row_bytes(row, columns), digest_size=16).digest()


def source_select(plan: TablePlan, where: ColumnElement[bool] | None, last: Sequence[Any] | None,
                  limit: int, exprs: dict[str, ColumnElement[Any]] | None = None) -> Any:
    exprs = exprs or {}
    stmt = select(*(exprs[c].label(c) if c in exprs else plan.table.c[c]
                    for c in plan.columns))
    after = plan.after(last)
    conds = [c for c in (where, after) if c is not None]
    if conds:
        stmt = stmt.where(and_(*conds))
    return stmt.order_by(*plan.pk_cols()).limit(limit)


def plans_by_name(plans: list[TablePlan]) -> dict[str, TablePlan]:
    return {p.name: p for p in plans}


def per_user(plan: TablePlan) -> bool:
    """One row per user (its key is a reference to the user: ``user_keys``)."""
    return len(plan.pk) == 1 and plan.refs.get(plan.pk[0]) == USERS


def keyed_by_name(plan: TablePlan) -> bool:
    """A table of its own, keyed by what it describes, not by an id (``model_info``, a
    cache of what model servers said): a row the target holds already is kept."""
    return not plan.offset_pk and not plan.refs


def kept_if_present(plan: TablePlan) -> bool:
    """Rows copied only when the target lacks their key, compared on that key only: the
    target's own (a user's key facts there, its cache) win."""
    return per_user(plan) or keyed_by_name(plan)


def scope_filter(plan: TablePlan, plans: dict[str, TablePlan],
                 user_ids: Sequence[int] | None) -> ColumnElement[bool] | None:
    """Restrict ``plan`` to the rows of ``user_ids`` (None: every row).

    A row is in scope when every user it names is in scope (a share with someone outside
    is left out; NULL, "everyone", stays) and every row it cannot do without (a non-null
    reference) is in scope too: a session's link to a collection someone else shared is
    left out. Nullable references to rows out of scope are cleared instead
    (``cleared_refs``): a citation of a shared document keeps its file, page and snippet."""
    if user_ids is None:
        return None
    if plan.name == USERS:
        return plan.table.c[plan.pk[0]].in_(list(user_ids))
    conds: list[ColumnElement[bool]] = []
    for col, ref in plan.refs.items():
        column = plan.table.c[col]
        if ref == USERS:
            inside = column.in_(list(user_ids))
            conds.append(or_(column.is_(None), inside) if column.nullable else inside)
            continue
        parent = plans.get(ref)
        if column.nullable or ref == plan.name or parent is None or not parent.offset_pk:
            continue
        inner = scope_filter(parent, plans, user_ids)
        if inner is not None:
            conds.append(column.in_(select(parent.table.c[parent.offset_pk]).where(inner)))
    return and_(*conds) if conds else None


def cleared_refs(plan: TablePlan, plans: dict[str, TablePlan],
                 user_ids: Sequence[int] | None) -> dict[str, ColumnElement[Any]]:
    """For a scoped copy: nullable references to rows left out, read as NULL."""
    if user_ids is None:
        return {}
    out: dict[str, ColumnElement[Any]] = {}
    for col, ref in plan.refs.items():
        column = plan.table.c[col]
        parent = plans.get(ref)
        if not column.nullable or ref in (USERS, plan.name) or parent is None \
                or not parent.offset_pk:
            continue
        inner = scope_filter(parent, plans, user_ids)
        if inner is not None:
            keep = column.in_(select(parent.table.c[parent.offset_pk]).where(inner))
            out[col] = case((keep, column), else_=null())
    return out
