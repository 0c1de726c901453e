"""Target-side steps of a copy: state rows, id offsets and sequences, the key check value,
conflicts with data already there, fetching rows by key, and building the search indexes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, func, insert, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.db import models as m
from engine.keys import crypto
from engine.db.coltypes import utcnow
from engine.db.connect import Database
from engine.db.search_backend import for_backend
from engine.portable.idmap import IdMap
from engine.portable.plan import USERS, TablePlan
from engine.portable.results import CopyRefused

if TYPE_CHECKING:
    from engine.config import Settings

# parley_meta rows that describe one database file and never travel
LOCAL_META = {"last_backup"}
KEY_META = ("key_check", "kdf_salt")


async def read_meta(conn: AsyncConnection) -> dict[str, str]:
    rows = await conn.execute(select(m.Meta.key, m.Meta.value))
    return {k: v for k, v in rows.all()}


KeyCandidates = Callable[[str | None], list[bytes]]


def key_candidates(settings: Settings | None) -> KeyCandidates:
    """The keys this user holds (key file or environment), derived with a database's salt.
    Used only to tell whether two check values were written by the same key."""
    def keys(salt_hex: str | None) -> list[bytes]:
        from engine.config import load_settings
        from engine.errors import ParleyError

        try:
            material = crypto.resolve_key(settings or load_settings(), create=False)
        except ParleyError:
            return []
        if material is None:
            return []
        found = list(material.retiring)
        if material.key is not None:
            found.insert(0, material.key)
        elif material.passphrase is not None and salt_hex:
            found.insert(0, crypto.derive_key(material.passphrase, bytes.fromhex(salt_hex)))
        return found

    return keys


def _same_key(source: dict[str, str], target: dict[str, str], keys: KeyCandidates) -> None:
    """Refuse a target whose values another key would have to read.

    Two check values are Fernet tokens (random IVs): equal strings mean the same database
    lineage; otherwise only a key that opens both proves they are the same key."""
    mine, theirs = source.get("key_check"), target.get("key_check")
    if mine is None or theirs is None or mine == theirs:
        return
    hint = "copy into an empty database, or one created with this key"
    if source.get("kdf_salt") != target.get("kdf_salt"):
        raise CopyRefused("the target database is encrypted with another key (another "
                          "passphrase salt)", hint)
    candidates = keys(source.get("kdf_salt"))
    if not candidates:
        raise CopyRefused("the target already has its own key check value and no key is "
                          "available to tell whether it is this database's key",
                          "set the key (key file or $PARLEY_KEY): it is only compared, "
                          "nothing is decrypted")
    if not any(crypto.key_matches(k, mine) and crypto.key_matches(k, theirs)
               for k in candidates):
        raise CopyRefused("the target database is encrypted with another key", hint)


async def copy_meta(tgt: Database, source_meta: dict[str, str], keys: KeyCandidates) -> None:
    """The key check value (and salt, rotation state) on the target, so the same key opens
    it; a target that holds another key's check value is refused before any row."""
    async with tgt.engine.begin() as conn:
        have = await read_meta(conn)
        _same_key(source_meta, have, keys)
        missing = [{"key": k, "value": v} for k, v in source_meta.items()
                   if k not in have and k not in LOCAL_META]
        if missing:
            await conn.execute(insert(m.Meta), missing)


async def check_key_compatible(conn: AsyncConnection, source_meta: dict[str, str],
                               keys: KeyCandidates) -> None:
    _same_key(source_meta, await read_meta(conn), keys)


async def load_state(conn: AsyncConnection, copy_id: str,
                     ids: IdMap) -> dict[str, m.CopyState] | None:
    rows = (await conn.execute(select(m.CopyState.__table__).where(
        m.CopyState.copy_id == copy_id))).mappings().all()
    if not rows:
        return None
    state = {r["table_name"]: m.CopyState(**dict(r)) for r in rows}
    for r in rows:
        ids.offsets[r["table_name"]] = int(r["id_offset"])
    for table, old, new in (await conn.execute(
            select(m.CopyMap.table_name, m.CopyMap.old_id, m.CopyMap.new_id)
            .where(m.CopyMap.copy_id == copy_id))).all():
        ids.exceptions.setdefault(table, {})[int(old)] = int(new)
    return state


async def users_with_data(conn: AsyncConnection, plans: dict[str, TablePlan],
                          names: Sequence[str]) -> list[str]:
    """Which of these user names already own rows on the target."""
    if not names:
        return []
    users = plans[USERS].table
    found = dict((await conn.execute(select(users.c.id, users.c.name)
                                     .where(users.c.name.in_(list(names))))).all())
    owners = []
    for uid, name in found.items():
        for plan in plans.values():
            col = next((c for c, ref in plan.refs.items() if ref == USERS), None)
            if col is None or plan.name == USERS:
                continue
            hit = await conn.scalar(select(plan.table.c[col]).where(
                plan.table.c[col] == uid).limit(1))
            if hit is not None:
                owners.append(name)
                break
    return owners


async def _sequence(conn: AsyncConnection, plan: TablePlan) -> str | None:
    if conn.dialect.name != "postgresql" or not plan.offset_pk:
        return None
    return await conn.scalar(text("SELECT pg_get_serial_sequence(:t, :c)"),
                             {"t": plan.name, "c": plan.offset_pk})


async def start_state(conn: AsyncConnection, copy_id: str, plans: list[TablePlan],
                      source_max: dict[str, int], ids: IdMap) -> dict[str, m.CopyState]:
    """Pick each table's offset (0 when empty), reserve the copied id range on PostgreSQL
    so concurrent inserts cannot take it, and record the state rows."""
    state = {}
    for plan in plans:
        offset = 0
        if plan.offset_pk:
            col = plan.table.c[plan.offset_pk]
            offset = int(await conn.scalar(select(func.coalesce(func.max(col), 0))) or 0)
            seq = await _sequence(conn, plan)
            if seq:
                last, called = (await conn.execute(
                    text(f"SELECT last_value, is_called FROM {seq}"))).one()
                if offset and called:
                    offset = max(offset, int(last))
        ids.offsets[plan.name] = offset
        row = m.CopyState(copy_id=copy_id, table_name=plan.name, id_offset=offset, last_key=None,
                          copied=0, skipped=0, done=False, updated_at=utcnow())
        state[plan.name] = row
    await conn.execute(insert(m.CopyState), [
        {c.name: getattr(s, c.name) for c in m.CopyState.__table__.columns}
        for s in state.values()])
    return state


async def reserve_ids(conn: AsyncConnection, plans: list[TablePlan],
                      source_max: dict[str, int], ids: IdMap) -> None:
    """Move PostgreSQL's sequences past the ids this copy will write, so rows others insert
    meanwhile cannot take them (again on every run: the source may have grown)."""
    for plan in plans:
        seq = await _sequence(conn, plan)
        top = ids.offsets.get(plan.name, 0) + source_max.get(plan.name, 0)
        if seq and top:
            await conn.execute(text(f"SELECT setval(:s, GREATEST(:v, (SELECT last_value "
                                    f"FROM {seq})))"), {"s": seq, "v": top})


async def save_progress(conn: AsyncConnection, copy_id: str, plan: TablePlan,
                        row: m.CopyState, exceptions: dict[int, int]) -> None:
    if exceptions:
        await conn.execute(insert(m.CopyMap), [
            {"copy_id": copy_id, "table_name": plan.name, "old_id": o, "new_id": n}
            for o, n in exceptions.items()])
    await conn.execute(update(m.CopyState).where(
        m.CopyState.copy_id == copy_id, m.CopyState.table_name == plan.name).values(
        last_key=row.last_key, copied=row.copied, skipped=row.skipped, done=row.done,
        updated_at=utcnow()))


async def finish_state(tgt: Database, copy_id: str) -> None:
    async with tgt.engine.begin() as conn:
        await conn.execute(update(m.CopyState).where(m.CopyState.copy_id == copy_id)
                           .values(done=True, updated_at=utcnow()))


async def forget_state(tgt: Database, copy_id: str) -> None:
    async with tgt.engine.begin() as conn:
        await conn.execute(delete(m.CopyMap).where(m.CopyMap.copy_id == copy_id))
        await conn.execute(delete(m.CopyState).where(m.CopyState.copy_id == copy_id))


async def fetch_by_keys(conn: AsyncConnection, plan: TablePlan,
                        keys: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], dict[str, Any]]:
    """Target rows with these keys: one indexed IN on the key's first column, the rest
    filtered here (row-value IN lists are not portable across drivers)."""
    if not keys:
        return {}
    first = plan.table.c[plan.pk[0]]
    wanted = set(keys)
    stmt = select(*(plan.table.c[c] for c in plan.columns)).where(
        first.in_(sorted({k[0] for k in keys})))
    found = {}
    for r in (await conn.execute(stmt)).mappings():
        key = tuple(r[c] for c in plan.pk)
        if key in wanted:
            found[key] = dict(r)
    return found


async def set_sequences(tgt: Database, plans: list[TablePlan]) -> None:
    """PostgreSQL sequences past the largest id (SQLite takes max(rowid) + 1 by itself)."""
    if tgt.backend != "postgresql":
        return
    async with tgt.engine.begin() as conn:
        for plan in plans:
            seq = await _sequence(conn, plan)
            if not seq:
                continue
            top = await conn.scalar(select(func.max(plan.table.c[plan.offset_pk])))
            if top:
                await conn.execute(text(f"SELECT setval(:s, GREATEST(:v, "
                                        f"(SELECT last_value FROM {seq})))"),
                                   {"s": seq, "v": int(top)})


async def build_indexes(tgt: Database, collections: list[dict[str, Any]]) -> int:
    """The target's vector indexes (vec0 tables / partial HNSW) for each copied collection's
    live generation and a re-embed in progress; keyword indexes follow the rows (FTS5
    triggers, the generated ``tsv``), and PostgreSQL's planner statistics are refreshed."""
    search = for_backend(tgt.backend)
    built = 0
    for coll in collections:
        generations = [(coll["vector_generation"], coll["dimension"])]
        if coll.get("pending_dimension"):
            generations.append((coll["vector_generation"] + 1, coll["pending_dimension"]))
        for gen, dim in generations:
            async with tgt.write() as s:
                await search.create_vector_index(s, coll["id"], gen, dim)
            built += 1
    async with tgt.write() as s:
        await search.refresh_statistics(s)
    return built


def dump_key(key: tuple[Any, ...]) -> str:
    return json.dumps(list(key))
