"""``parley db copy``: every table from one Parley database to another, in batches.

The source is read in one snapshot (a read transaction on SQLite's WAL, REPEATABLE READ on
PostgreSQL), so the copy and its verification see the same data even while Parley keeps
writing. Each batch of target rows commits together with the table's state row: a copy
killed at any point resumes after the last committed batch, without duplicates.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, insert, inspect, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from engine.db import schema
from engine.db.connect import Database, mask_url, sqlite_path
from engine.errors import DatabaseError
from engine.portable import scope
from engine.portable import state as st
from engine.portable import target as tg
from engine.portable.access import access, open_database
from engine.portable.idmap import IdMap
from engine.portable.matching import Matching
from engine.portable.plan import (
    USERS,
    TablePlan,
    build_plans,
    cleared_refs,
    scope_filter,
    source_select,
)
from engine.portable.results import CopyRefused, CopyReport, TableCount, VerificationFailed

if TYPE_CHECKING:
    from engine.config import Settings

BATCH = 1000
VERIFY = "(verify)"  # a phase, reported through the progress callback like a table
Progress = Callable[[str, int, int], None]


@asynccontextmanager
async def snapshot(db: Database) -> AsyncIterator[AsyncConnection]:
    """A read-only connection that sees one consistent state of the whole database."""
    async with db.engine.connect() as conn:
        if db.backend == "postgresql":
            conn = await conn.execution_options(isolation_level="REPEATABLE READ",
                                                postgresql_readonly=True)
        else:
            conn = await conn.execution_options(parley_readonly=True)
        async with conn.begin():
            yield conn


def _location(url: str) -> str:
    parsed = make_url(url)
    return f"{parsed.get_backend_name()}|{parsed.host or ''}|{parsed.port or ''}|" \
        f"{parsed.database or ''}"


class Copier(Matching):
    """One copy from ``source_url`` to ``target_url`` (see the module docstring)."""

    def __init__(self, source_url: str, target_url: str, *, merge: bool = False,
                 dry_run: bool = False, users: Sequence[str] | None = None,
                 batch: int = BATCH, progress: Progress | None = None,
                 verify: bool = True, settings: Settings | None = None,
                 copy_id: str | None = None, local_user: str | None = None) -> None:
        self.source_url, self.target_url = source_url, target_url
        self.merge, self.dry_run, self.batch, self.verify = merge, dry_run, batch, verify
        self.user_names = list(users) if users else None
        self.progress = progress
        self.plans = build_plans()
        self.by_name = {p.name: p for p in self.plans}
        self.ids = IdMap(self.by_name)
        self.keys = tg.key_candidates(settings)
        self.inserted = 0
        self.fixed_copy_id = copy_id
        # the user an SQLite target opens as (``scope._into_file``); None: names kept
        self.local_user = local_user

    async def run(self) -> CopyReport:
        if _location(self.source_url) == _location(self.target_url):
            raise CopyRefused("the source and the target are the same database",
                              "name another database with --to or --from")
        where = sqlite_path(self.source_url)
        if where is not None and not where.exists():
            raise CopyRefused(f"there is no database at {where}", "check the path in the URL")
        target_file = sqlite_path(self.target_url)
        if target_file is not None and not self.dry_run:
            target_file.parent.mkdir(parents=True, exist_ok=True)
        src = open_database(self.source_url)
        tgt = open_database(self.target_url)
        try:
            return await self._run(src, tgt)
        except DBAPIError as exc:
            detail = str(exc.orig or exc).strip().splitlines()[0][:200]
            raise DatabaseError(f"the copy stopped: {detail}",
                                "nothing half-written is kept; if Parley is writing to the "
                                "target, stop it, then run the same command again (it "
                                "resumes)") from None
        finally:
            await src.dispose()
            await tgt.dispose()

    async def _revisions(self, src: Database, tgt: Database) -> tuple[str, bool]:
        head = schema.head_revision()
        current = (await schema.status(src)).current
        if current != head:
            raise CopyRefused(f"the source {mask_url(self.source_url)} is at schema revision "
                              f"{current or '(none)'}; this Parley copies revision {head}",
                              "upgrade it first: parley --db SOURCE db upgrade")
        there = (await schema.status(tgt)).current
        if there is None:
            async with tgt.engine.connect() as conn:
                tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            if tables:
                raise CopyRefused(f"the target {mask_url(self.target_url)} holds tables but no "
                                  "Parley schema", "copy into an empty database")
            if not self.dry_run:
                await schema.upgrade(tgt)
            return head, True
        if there != current:
            raise CopyRefused(f"the target {mask_url(self.target_url)} is at schema revision "
                              f"{there}, the source at {current}",
                              "bring both to the same version: parley --db URL db upgrade")
        return head, False

    async def _scope(self, sconn: AsyncConnection, tgt: Database, created: bool
                     ) -> list[int] | None:
        """Whose rows to copy, as whom they land, and how each table is filtered."""
        users = self.by_name[USERS]
        self.source_access = await access(sconn)
        user_ids = await scope.source_user_ids(sconn, users, self.source_access,
                                               self.user_names)
        self.where = {p.name: scope_filter(p, self.by_name, user_ids) for p in self.plans}
        self.exprs = {p.name: cleared_refs(p, self.by_name, user_ids) for p in self.plans}
        self.names = await self._source_users(sconn)
        async with tgt.engine.connect() as tconn:
            self.target_access = await access(tconn)
            self.ids.renames = await scope.renames(
                None if created else tconn, users, self.target_access, self.names,
                source=self.source_access, local_user=self.local_user)
        self.runner = st.Runner.of(self.target_access)
        return user_ids

    async def _run(self, src: Database, tgt: Database) -> CopyReport:
        started = time.perf_counter()
        _, created = await self._revisions(src, tgt)
        async with snapshot(src) as sconn:
            await self._scope(sconn, tgt, created)
            meta = await tg.read_meta(sconn)
            self.key_facts = await tg.user_key_facts(sconn, self.names)
            checks = sorted(str(f.get("key_check")) for f in self.key_facts.values())
            copy_id = st.runner_copy_id(self.fixed_copy_id or hashlib.sha256("|".join([
                _location(self.source_url), *checks, json.dumps(self.ids.renames),
                json.dumps(sorted(self.user_names or []))]).encode()).hexdigest()[:32],
                self.target_access)
            counts, maxima = await self._counts(sconn)
            self.maxima = maxima
            if self.dry_run:
                await self._dry_check(tgt, created)
                tables = [TableCount(p.name, counts[p.name]) for p in self.plans]
                return CopyReport(copy_id, mask_url(self.source_url), mask_url(self.target_url),
                                  tables, dry_run=True, created_schema=created,
                                  merged=self.merge, scope=self._scope_text(),
                                  renamed=dict(self.ids.renames))
            state, resumed = await self._prepare(sconn, tgt, copy_id, meta, maxima)
            self.state = state
            phases = {"prepare": time.perf_counter() - started}
            mark = time.perf_counter()
            for plan in self.plans:
                await self._copy_table(sconn, tgt, copy_id, plan, state[plan.name],
                                       counts[plan.name])
            phases["rows"] = time.perf_counter() - mark
            mark = time.perf_counter()
            await self._finish_target(sconn, tgt)
            phases["indexes"] = time.perf_counter() - mark
            mark = time.perf_counter()
            tables = [TableCount(p.name, counts[p.name], state[p.name].copied,
                                 state[p.name].skipped) for p in self.plans]
            if self.verify:
                checked = []
                for i, (p, t) in enumerate(zip(self.plans, tables, strict=True)):
                    if self.progress:  # phases are reported like tables: "verify"
                        self.progress(VERIFY, i, len(self.plans))
                    checked.append(await self._verify(sconn, tgt, p, t))
                tables = checked
            phases["verify"] = time.perf_counter() - mark
        report = CopyReport(copy_id, mask_url(self.source_url), mask_url(self.target_url),
                            tables, phases=phases, resumed=resumed, merged=self.merge,
                            created_schema=created,
                            ids_shifted={k: v for k, v in self.ids.offsets.items() if v},
                            seconds=time.perf_counter() - started, new_rows=self.inserted,
                            scope=self._scope_text(), renamed=dict(self.ids.renames))
        bad = [t.table for t in tables if not t.ok]
        if bad:
            error = VerificationFailed(
                f"verification failed: {', '.join(bad)} differ between source and target",
                "run the copy again to finish it; if it persists, check the target with "
                "parley --db TARGET db check")
            error.report = report  # type: ignore[attr-defined]
            raise error
        await st.finish_state(tgt, copy_id, self.runner)
        return report

    def _scope_text(self) -> str:
        if self.user_names:
            return "the data of " + ", ".join(f"'{n}'" for n in self.user_names)
        return self.source_access.describe()

    async def _counts(self, conn: AsyncConnection) -> tuple[dict[str, int], dict[str, int]]:
        counts, maxima = {}, {}
        for p in self.plans:
            stmt = select(func.count()).select_from(p.table)
            top = select(func.max(p.table.c[p.offset_pk])) if p.offset_pk else None
            if self.where[p.name] is not None:
                stmt = stmt.where(self.where[p.name])
            counts[p.name] = int(await conn.scalar(stmt) or 0)
            if top is not None:
                maxima[p.name] = int(await conn.scalar(top) or 0)
        return counts, maxima

    async def _source_users(self, sconn: AsyncConnection) -> list[str]:
        users = self.by_name[USERS].table
        stmt = select(users.c.name).order_by(users.c.id)
        if self.where[USERS] is not None:
            stmt = stmt.where(self.where[USERS])
        return list((await sconn.execute(stmt)).scalars())

    async def _dry_check(self, tgt: Database, created: bool) -> None:
        if created:
            return
        async with tgt.engine.connect() as conn:
            await tg.check_keys(conn, self.key_facts, self.ids.renames, self.keys)

    async def _prepare(self, sconn: AsyncConnection, tgt: Database, copy_id: str,
                       meta: dict[str, str], maxima: dict[str, int]
                       ) -> tuple[dict[str, Any], bool]:
        # a member inserts no users: each one it copies lands on an existing user
        skip = () if self.target_access.sees_all else (USERS,)
        async with tgt.engine.begin() as conn:
            await tg.check_keys(conn, self.key_facts, self.ids.renames, self.keys)
            loaded = await st.load_state(conn, copy_id, self.ids, self.runner)
            if loaded is not None:
                state, self.runner = loaded
                await st.extend_reservations(conn, copy_id, self.plans, maxima, state,
                                             self.runner, skip=skip)
                return state, True
            if not self.merge:
                owners = await tg.users_with_data(
                    conn, self.by_name, [self.ids.renames.get(n, n) for n in self.names])
                if owners:
                    raise CopyRefused(f"the target already holds data of user '{owners[0]}'",
                                      "add --merge to copy only what is not there yet")
            state = await st.start_state(conn, copy_id, self.plans, maxima, self.ids,
                                         self.runner, skip=skip)
        if self.target_access.sees_all:
            await tg.copy_meta(tgt, meta)
        return state, False

    async def _copy_table(self, sconn: AsyncConnection, tgt: Database, copy_id: str,
                          plan: TablePlan, state: Any, total: int) -> None:
        last = json.loads(state.last_key) if state.last_key else None
        index = None
        if self.merge and plan.offset_pk:
            async with tgt.engine.connect() as conn:
                index = await self._content_index(conn, plan)
        done = state.copied + state.skipped
        while True:
            rows = [dict(r) for r in (await sconn.execute(source_select(
                plan, self.where[plan.name], last, self.batch,
                self.exprs[plan.name]))).mappings()]
            if not rows:
                break
            out, matched = await self._match(tgt, plan, rows, index)
            async with tgt.engine.begin() as conn:
                if out:
                    await conn.execute(insert(plan.table), out)
                    self.inserted += len(out)
                state.last_key = tg.dump_key(plan.key_of(rows[-1]))
                state.copied += len(out)
                state.skipped += len(rows) - len(out)
                await st.save_progress(conn, copy_id, plan, state, matched, self.runner)
            last = list(plan.key_of(rows[-1]))
            done += len(rows)
            if self.progress:
                self.progress(plan.name, min(done, total), total)
        if self.progress and total == 0:
            self.progress(plan.name, 0, 0)

    async def _finish_target(self, sconn: AsyncConnection, tgt: Database) -> None:
        await self._fix_forward(tgt)
        colls = self.by_name.get("collections")
        if colls is None:
            return
        stmt = select(colls.table.c.id)
        if self.where["collections"] is not None:
            stmt = stmt.where(self.where["collections"])
        ids = [self.ids.map("collections", i) for i in (await sconn.execute(stmt)).scalars()]
        rows = []
        async with tgt.engine.connect() as conn:
            for start in range(0, len(ids), 500):
                rows += [dict(r) for r in (await conn.execute(select(colls.table).where(
                    colls.table.c.id.in_(ids[start:start + 500])))).mappings()]
        await tg.build_indexes(tgt, rows, owner=self.target_access.sees_all,
                               progress=self.progress)

    def _upper(self, plan: TablePlan) -> int | None:
        """The largest source id this copy ever wrote (now, or in an earlier run); None
        where it wrote no range of its own (a member's users all land on existing ones)."""
        if not plan.offset_pk or (plan.name == USERS and not self.target_access.sees_all):
            return None
        last = self.state[plan.name].last_key
        done = json.loads(last)[0] if last else 0
        return max(self.maxima.get(plan.name, 0), int(done))

    async def _verify(self, sconn: AsyncConnection, tgt: Database, plan: TablePlan,
                      count: TableCount) -> TableCount:
        """Row count and a digest of every value (tokens, vectors, texts) on both sides."""
        from engine.portable.verify import verify_table

        return await verify_table(sconn, tgt, plan, self.where[plan.name], self.ids, count,
                                  None if self.merge else self._upper(plan),
                                  self.batch, self.exprs[plan.name])
