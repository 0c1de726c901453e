"""Transaction-local PostgreSQL settings for a search, sent in as few round trips as possible.

A search sets a few server settings for its own transaction only (``hnsw.ef_search``, the
BM25 index's scan depth, the plan cache mode). Each ``SET LOCAL`` is a round trip, and on a
loaded machine a round trip costs more than the index scans themselves (measured: 2-5 ms a
statement at a load average of 10 on 2 cores, against 1-2 ms for a BM25 top-k scan at
100k chunks). So a module that will need a setting later ``defer``s it, and the next
``apply`` sends everything pending in one ``SELECT set_config(...)``; a value already in
force in the transaction is not sent again. What is known is kept in the session's
``info``, which lives as long as the session: Parley's sessions are one transaction each.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

_SET = "parley_pg_settings_set"
_PENDING = "parley_pg_settings_pending"


def defer(s: AsyncSession, name: str, value: str) -> None:
    """Have the next ``apply`` in this transaction also set ``name`` (no round trip now)."""
    if s.info.get(_SET, {}).get(name) != value:
        s.info.setdefault(_PENDING, {})[name] = value


async def apply(s: AsyncSession, **values: str) -> None:
    """Set ``values`` (names with ``__`` for dots) and everything deferred, for the rest of
    this transaction, in one statement; nothing when all of it is already in force."""
    wanted = {**s.info.pop(_PENDING, {}),
              **{name.replace("__", "."): value for name, value in values.items()}}
    done = s.info.setdefault(_SET, {})
    todo = {name: value for name, value in wanted.items() if done.get(name) != value}
    if not todo:
        return
    calls = ", ".join(f"set_config(:n{i}, :v{i}, true)" for i in range(len(todo)))
    params: dict[str, str] = {}
    for i, (name, value) in enumerate(todo.items()):
        params[f"n{i}"], params[f"v{i}"] = name, value
    await s.execute(text(f"SELECT {calls}"), params)
    done.update(todo)
