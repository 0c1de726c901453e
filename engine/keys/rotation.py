"""The batches of a key rotation: its recorded state and one transaction per batch.

The encrypted columns are found in the models by type (every ``EncryptedText`` column), so
a column added later is rotated without touching this module. Tokens are read and written
raw (as ``Text``): a value is decrypted and re-encrypted by ``MultiFernet.rotate`` and never
passes through business code. The walk goes table by table (by name) in primary key order;
the state row records the table and the last id done, and is updated in the same
transaction as the values it covers, so progress and data never disagree.

The key belongs to the user: rotation covers only the caller's rows (every encrypted table
has ``user_id``), and the state lives in the caller's ``user_keys.rotation``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from datetime import datetime
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import Column, Row, Table, Text, bindparam, func, select, type_coerce, update
from sqlalchemy.ext.asyncio import AsyncSession

from engine.keys import crypto
from engine.db import models as m
from engine.db.coltypes import EncryptedText
from engine.db.connect import Database
from engine.errors import ParleyError
from engine.types import RotationState

from engine.keys.state import META_ROTATION  # noqa: F401  (re-exported)
ACTIVE_PHASES = ("rotate", "verify")


@dataclass
class Rotation:
    """The state of an unfinished rotation, stored as JSON in ``user_keys.rotation``."""

    new_check: str  # the check value under the new key: identifies it without storing it
    phase: str  # "prepare" | "rotate" | "verify" | "retire"
    new_key_env: str | None = None  # None: the new key is in the key file
    table: str = ""  # the table being walked ("" before the first)
    last_id: int = 0
    done: int = 0  # rows visited in this phase
    total: int = 0  # rows to visit in this phase (counted when it began)
    rewritten: int = 0
    unreadable: int = 0
    started_at: str = ""

    def dump(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def load(cls, text: str) -> Rotation:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    def location(self) -> str:
        return "key file" if self.new_key_env is None else f"${self.new_key_env}"

    def resume_flags(self) -> str:
        return "" if self.new_key_env is None else f" --new-key-env {self.new_key_env}"

    def public(self) -> RotationState:
        return RotationState(phase=self.phase, done=self.done, total=self.total,
                             rewritten=self.rewritten,
                             started_at=datetime.fromisoformat(self.started_at),
                             new_key_location=self.location())


def encrypted_columns() -> list[tuple[Table, list[Column[str]]]]:
    """Every table with ``EncryptedText`` columns, by table name, with those columns."""
    found = []
    for table in sorted(m.Base.metadata.tables.values(), key=lambda t: t.name):
        cols = [c for c in table.columns if isinstance(c.type, EncryptedText)]
        if not cols:
            continue
        if [c.name for c in table.primary_key.columns] != ["id"]:
            raise RuntimeError(f"{table.name}: encrypted tables need an integer 'id' key")
        if "user_id" not in table.c:
            raise RuntimeError(f"{table.name}: encrypted rows belong to a user ('user_id')")
        found.append((table, cols))
    return found


async def _count(s: AsyncSession, user_id: int) -> int:
    total = 0
    for table, _ in encrypted_columns():
        total += await s.scalar(select(func.count()).select_from(table)
                                .where(table.c.user_id == user_id)) or 0
    return total


async def count_rows(db: Database, user_id: int) -> int:
    """The user's rows of every table holding encrypted values (what a phase visits)."""
    async with db.read() as s:
        return await _count(s, user_id)


async def run_batch(db: Database, cipher: crypto.FernetCipher, batch_size: int,
                    user_id: int) -> Rotation:
    """Do the next batch of the user's rotation in one transaction; return the new state."""
    async with db.write() as s:
        row = await s.get(m.UserKey, user_id, with_for_update=True)
        if row is None or row.rotation is None:
            raise ParleyError("the key rotation state is gone (finished by another process?)",
                              "check: parley key status")
        state = Rotation.load(row.rotation)
        if state.phase not in ACTIVE_PHASES:
            return state
        tables = [(t, cols) for t, cols in encrypted_columns() if t.name >= state.table]
        if tables and tables[0][0].name == state.table:
            table, cols = tables[0]
            rows = (await s.execute(
                select(table.c.id, *[type_coerce(c, Text).label(c.name) for c in cols])
                .where(table.c.id > state.last_id, table.c.user_id == user_id)
                .order_by(table.c.id).limit(batch_size)
            )).all()
            if rows:
                await _rewrite(s, state, cipher, table, cols, rows)
                row.rotation = state.dump()
                return state
            tables = tables[1:]
        if tables:
            state.table, state.last_id = tables[0][0].name, 0
        else:
            await _next_phase(s, state, row)
        row.rotation = state.dump()
        return state


async def _rewrite(s: AsyncSession, state: Rotation, cipher: crypto.FernetCipher, table: Table,
                   cols: list[Column[str]], rows: Sequence[Row[Any]]) -> None:
    verify = state.phase == "verify"
    updates: dict[str, list[dict[str, object]]] = {c.name: [] for c in cols}
    for values in rows:
        for col, token in zip(cols, values[1:], strict=True):
            if token is None or (verify and cipher.primary_reads(token)):
                continue
            try:
                fresh = cipher.rotate(token)
            except InvalidToken:
                # Corrupted, or under a key nobody has: it uses neither key, so it does not
                # hold the old key back. Reported once, by the verify pass.
                if verify:
                    state.unreadable += 1
                continue
            updates[col.name].append({"b_id": values[0], "b_token": fresh})
    for name, params in updates.items():
        if params:
            # The token is bound as plain Text: it is already encrypted.
            await s.execute(update(table).where(table.c.id == bindparam("b_id"))
                            .values({name: bindparam("b_token", type_=Text())}), params)
            state.rewritten += len(params)
    state.last_id = rows[-1][0]
    state.done += len(rows)


async def _next_phase(s: AsyncSession, state: Rotation, row: m.UserKey) -> None:
    state.table, state.last_id, state.done = "", 0, 0
    if state.phase == "rotate":
        state.phase = "verify"
        state.total = await _count(s, row.user_id)
        return
    # Verified: the new key alone reads every readable value. From this commit on the
    # user's check value names the new key; the old one is dropped by the caller.
    row.key_check = state.new_check
    state.phase = "retire"
