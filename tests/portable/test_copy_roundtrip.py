"""``parley db copy`` SQLite -> PostgreSQL -> SQLite through the real command: every table
equal by content, the same key opens every copy, and what users see is the same."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import PostgresServer
from tests.portable.support import (
    add_member,
    cli,
    populate,
    role_name,
    table_digests,
    vector_indexes,
)


def _views(url: str, me: str, bob: str) -> dict[str, object]:
    """What a user sees: a session with its branches and citations, a search, the usage.
    On PostgreSQL each user is a role of their own: ``url`` names the role, ``bob`` is the
    other user's URL there (his name on SQLite)."""
    out: dict[str, object] = {}
    for name, args in {"show": ("sessions", "show", "1", "--all-branches", "--json"),
                       "list": ("sessions", "list", "--all", "--json"),
                       "search": ("search", "battery warranty", "--collection", "notes",
                                  "--json", "-k", "4"),
                       "keyword": ("search", "E4711", "--collection", "notes", "--json"),
                       "usage": ("usage", "--by", "model", "--json"),
                       "persona": ("personas", "show", "terse", "--json")}.items():
        res = cli("--user", me, *args, url=url)
        out[name] = (res.returncode, res.stdout, res.stderr) if res.returncode else \
            json.loads(res.stdout)
    other = cli("sessions", "list", "--json", url=bob) if "://" in bob else \
        cli("--user", bob, "sessions", "list", "--json", url=url)
    assert other.returncode == 0, other.stderr
    out["bob"] = json.loads(other.stdout)
    return out


async def test_sqlite_to_postgres_to_sqlite(parley_home: Path,
                                           postgres_server: PostgresServer) -> None:
    first = f"sqlite:///{parley_home / 'first.db'}"
    last = f"sqlite:///{parley_home / 'last.db'}"
    name = await postgres_server.create_database()
    pg = postgres_server.sqlalchemy_url(name)
    try:
        # the users are named after the roles they will be on PostgreSQL
        me, bob = role_name("me"), role_name("bob")
        await populate(first, user=me, other_user=bob)
        original = await table_digests(first)
        assert original["chunk_embeddings"][0] == 12 and original["users"][0] == 2

        dry = cli("db", "copy", "--to", pg, "--dry-run", "--json", url=first)
        assert dry.returncode == 0, dry.stderr
        plan = json.loads(dry.stdout)
        assert plan["dry_run"] and plan["created_schema"]
        assert {t["table"]: t["source_rows"] for t in plan["tables"]}["messages"] == 5

        there = cli("db", "copy", "--to", pg, url=first)
        assert there.returncode == 0, there.stderr
        assert "every table verified" in there.stderr and "ids kept" in there.stderr
        assert "citations" in there.stdout
        assert await table_digests(pg) == original

        back = cli("db", "copy", "--from", pg, "--json", url=last)
        assert back.returncode == 0, back.stderr
        assert all(t["ok"] for t in json.loads(back.stdout)["tables"])
        assert await table_digests(last) == original

        # search indexes were built on each target: two collections, one with a
        # re-embed in progress (three generations), vec0 tables (float and bit) / HNSW
        assert await vector_indexes(pg) == 3
        assert await vector_indexes(last) == await vector_indexes(first)

        # the superuser copied every user; each then signs in as their own role
        me_url, bob_url = await add_member(pg, me), await add_member(pg, bob)
        views, on_pg = _views(first, me, bob), _views(me_url, me, bob_url)
        assert views == _views(last, me, bob)
        # PostgreSQL ranks keywords with its own BM25 over its own stemmer, so its scores
        # are its own: everything else, and the hits found, are the same
        for key in ("search", "keyword"):
            assert {h["chunk_id"] for h in on_pg.pop(key)["hits"]} == \
                {h["chunk_id"] for h in views[key]["hits"]}  # type: ignore[index]
        assert on_pg == {k: v for k, v in views.items() if k not in ("search", "keyword")}
        assert views["search"]["hits"][0]["path"] == "/manuals/warranty.pdf"  # type: ignore[index]
        assert views["keyword"]["hits"]  # type: ignore[index]  # FTS5 / tsv on the copy
        assert views["bob"][0]["title"] == "Bob's secrets"  # type: ignore[index]
        # the persona's tools, and the persona the session's tools came from, travel
        assert views["persona"]["tools"] == ["parley.search", "files.*"]  # type: ignore[index]
        assert views["show"]["settings"]["tools"] == {  # type: ignore[index]
            "value": "parley.*", "from": "persona terse"}
    finally:
        await postgres_server.drop_database(name)
