"""Target-side steps of a copy: each user's key check value, conflicts with data already
there, fetching rows by key, and building the search indexes (the copy's own progress and
id offsets: ``engine.portable.state``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.db import models as m
from engine.keys import crypto
from engine.db.connect import Database
from engine.db.search_backend import for_backend
from engine.teams import rls
from engine.portable.plan import USERS, TablePlan
from engine.portable.results import CopyRefused

if TYPE_CHECKING:
    from engine.config import Settings

# parley_meta rows that describe one database file and never travel
LOCAL_META = {"last_backup"}
# rows every user has once Parley opened (key facts) or the owner's team changes wrote:
# not "this user's data" when deciding whether a copy would duplicate it
NOT_DATA = ("user_keys", "audit_log")
INDEXES = "(indexes)"  # a phase, reported through the progress callback like a table


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


def _same_key(mine: dict[str, str | None], theirs: dict[str, str | None], keys: KeyCandidates,
              who: str) -> None:
    """Refuse a target whose rows of this user another key would have to read.

    Two check values are Fernet tokens (random IVs): equal strings mean the same key's
    lineage; otherwise only a key that opens both proves they are the same key."""
    a, b = mine.get("key_check"), theirs.get("key_check")
    if a is None or b is None or a == b:
        return
    hint = "copy into an empty database, or one where this user has the same key"
    if mine.get("kdf_salt") != theirs.get("kdf_salt"):
        raise CopyRefused(f"on the target, user '{who}' is encrypted with another key "
                          "(another passphrase salt)", hint)
    candidates = keys(mine.get("kdf_salt"))
    if not candidates:
        raise CopyRefused(f"on the target, user '{who}' already has a key check value and no "
                          "key is available to tell whether it is the same key",
                          "set the key (key file or $PARLEY_KEY): it is only compared, "
                          "nothing is decrypted")
    if not any(crypto.key_matches(k, a) and crypto.key_matches(k, b) for k in candidates):
        raise CopyRefused(f"on the target, user '{who}' is encrypted with another key", hint)


async def user_key_facts(conn: AsyncConnection, names: Sequence[str]
                         ) -> dict[str, dict[str, str | None]]:
    """Each named user's key check value and KDF salt (``user_keys``)."""
    if not names:
        return {}
    rows = await conn.execute(
        select(m.User.name, m.UserKey.key_check, m.UserKey.kdf_salt)
        .join(m.UserKey, m.UserKey.user_id == m.User.id).where(m.User.name.in_(list(names))))
    return {n: {"key_check": c, "kdf_salt": s} for n, c, s in rows.all()}


async def check_keys(conn: AsyncConnection, source: dict[str, dict[str, str | None]],
                     renames: dict[str, str], keys: KeyCandidates) -> None:
    """Every copied user's key facts against the target user they land on: the same key
    must open both (the copy never decrypts, so rows under two keys would be lost)."""
    landing = {renames.get(n, n): n for n in source}
    there = await user_key_facts(conn, list(landing))
    for target_name, facts in there.items():
        _same_key(source[landing[target_name]], facts, keys, target_name)


async def copy_meta(tgt: Database, source_meta: dict[str, str]) -> None:
    """Database-wide settings the target lacks (the key facts are per user, in
    ``user_keys``, and travel with that table). Only a role that may write them."""
    async with tgt.engine.begin() as conn:
        have = await read_meta(conn)
        missing = [{"key": k, "value": v} for k, v in source_meta.items()
                   if k not in have and k not in LOCAL_META]
        if missing:
            await conn.execute(insert(m.Meta), missing)


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
            if col is None or plan.name in (USERS, *NOT_DATA):
                continue
            hit = await conn.scalar(select(plan.table.c[col]).where(
                plan.table.c[col] == uid).limit(1))
            if hit is not None:
                owners.append(name)
                break
    return owners


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


async def build_indexes(tgt: Database, collections: list[dict[str, Any]], *,
                        owner: bool = True,
                        progress: Callable[[str, int, int], None] | None = None) -> int:
    """The target's vector indexes (vec0 tables / partial HNSW) for each copied collection's
    live generation and a re-embed in progress; keyword indexes follow the rows (FTS5
    triggers, the generated ``tsv``), and PostgreSQL's planner statistics are refreshed."""
    search = for_backend(tgt.backend)
    built = 0
    todo = []
    for coll in collections:
        todo.append((coll["id"], coll["vector_generation"], coll["dimension"]))
        if coll.get("pending_dimension"):
            todo.append((coll["id"], coll["vector_generation"] + 1, coll["pending_dimension"]))
    for cid, gen, dim in todo:
        if progress:
            progress(INDEXES, built, len(todo))
        async with tgt.write() as s:
            if owner:  # the schema owner (or a superuser, who is no Parley user) may
                await search.create_vector_index(s, cid, gen, dim)
            else:  # a member, through the function that checks write access
                await rls.vector_index(s, tgt.backend, cid, gen, dim)
        built += 1
    async with tgt.write() as s:
        await search.refresh_statistics(s)
    return built


def dump_key(key: tuple[Any, ...]) -> str:
    return json.dumps(list(key))
