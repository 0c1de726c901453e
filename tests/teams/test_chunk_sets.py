"""Chunk sets under row-level security: identical content is stored once per owner, never
across users; members ingest, deduplicate, verify citations and watch folders; raw SQL as
a member sees chunks only through documents they can read. Real roles on the embedded
PostgreSQL, the CLI as each person (in-process for the steps of a scenario, the real command
for what a member is refused)."""

from __future__ import annotations

import shutil
from pathlib import Path

import asyncpg
import pytest

from tests.engine.test_drift import write_notes
from tests.teams.support import REPO, Person
from tests.teams.test_teams import _json, team  # noqa: F401  (the fixture)

NOTES = REPO / "tests" / "fixtures" / "ingest" / "notes.md"
DOCS = REPO / "tests" / "fixtures" / "docs"


def _ok(out) -> str:  # type: ignore[no-untyped-def]
    assert out.returncode == 0, out.stderr
    return str(out.stdout)


async def _sets(su: asyncpg.Connection, content_of: Path) -> list[asyncpg.Record]:
    """Every chunk set holding ``content_of``'s bytes (as the superuser: all users')."""
    import hashlib

    digest = hashlib.sha256(content_of.read_bytes()).hexdigest()
    return await su.fetch("SELECT s.id, u.name AS owner, c.name AS creator, s.chunk_count "
                          "FROM chunk_sets s JOIN users u ON u.id = s.user_id "
                          "LEFT JOIN users c ON c.id = s.created_by "
                          "WHERE s.content_hash = $1 ORDER BY s.id", digest)


async def test_the_same_file_of_two_members_is_two_chunk_sets_and_neither_reads_the_other(
        team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, owner, alice, bob = team
    # both ingest the same file; alice twice (a second collection): stored once for her
    _ok(alice.steps("ingest", str(NOTES), "--collection", "mine"))
    again = _json(alice.steps("ingest", str(NOTES), "--collection", "copies", "--json"))
    assert again["linked"] == 1 and again["indexed"] == 1, again
    _ok(bob.steps("ingest", str(NOTES), "--collection", "his"))
    su = await db.superuser()
    try:
        sets = await _sets(su, NOTES)
        assert [s["owner"] for s in sets] == [alice.role, bob.role]
        alice_set, bob_set = sets[0]["id"], sets[1]["id"]
        bob_chunks = await su.fetchval("SELECT count(*) FROM chunks WHERE chunk_set_id = $1",
                                       bob_set)
        assert bob_chunks > 0
        listed = _json(alice.steps("docs", "list", "--json"))["documents"]
        assert sorted(d["collection"] for d in listed) == ["copies", "mine"]
        assert all(d["copies"] for d in listed)

        conn = await alice.sql()
        try:
            # alice reads her own chunks and vectors, nothing of bob's
            assert await conn.fetchval("SELECT count(*) FROM chunks WHERE chunk_set_id = $1",
                                       bob_set) == 0
            assert await conn.fetchval("SELECT count(*) FROM chunk_sets WHERE id = $1",
                                       bob_set) == 0
            assert await conn.fetchval("SELECT count(DISTINCT chunk_set_id) FROM chunks") == 1
            assert await conn.fetchval(
                "SELECT count(*) FROM chunk_embeddings WHERE chunk_id IN "
                "(SELECT id FROM chunks WHERE chunk_set_id = $1)", alice_set) == 2 * bob_chunks
            # nor through a document of her own pointed at bob's set, nor by writing into it
            doc = await conn.fetchval("SELECT min(id) FROM documents")
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute("UPDATE documents SET chunk_set_id = $1 WHERE id = $2",
                                   bob_set, doc)
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(
                    "INSERT INTO chunks (user_id, chunk_set_id, chunk_index, text, "
                    "content_hash, token_count) SELECT user_id, $1, 99, 'x', 'x', 1 "
                    "FROM chunk_sets WHERE id = $2", bob_set, alice_set)
            assert await conn.execute("DELETE FROM chunks WHERE chunk_set_id = $1",
                                      bob_set) == "DELETE 0"
            assert await conn.execute("DELETE FROM chunk_sets WHERE id = $1",
                                      bob_set) == "DELETE 0"
        finally:
            await conn.close()
        assert await su.fetchval("SELECT count(*) FROM chunks WHERE chunk_set_id = $1",
                                 bob_set) == bob_chunks
        # deleting one of alice's copies keeps the other whole
        _ok(alice.steps("collections", "remove", "copies", "--yes"))
        assert [s["id"] for s in await _sets(su, NOTES)] == [alice_set, bob_set]
        hits = _json(alice.steps("search", "lighthouse keeper", "--collection", "mine",
                                 "--json"))["hits"]
        assert hits and all(h["path"] == str(NOTES) for h in hits)
        assert alice.cli("search", "lighthouse", "--collection", "copies").returncode == 1
    finally:
        await su.close()


async def test_a_writer_of_a_shared_collection_never_reaches_the_owners_private_copy(
        team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, owner, alice, bob = team
    private = tmp_path / "private"
    private.mkdir()
    secret = private / "notes.md"
    shutil.copy(NOTES, secret)
    _ok(owner.steps("ingest", str(DOCS), "--collection", "handbook"))
    _ok(owner.steps("ingest", str(private), "--collection", "diary"))
    _ok(owner.steps("collections", "share", "handbook", "--all"))
    _ok(owner.steps("collections", "share", "handbook", "--with", alice.role, "--write"))
    handbook = f"{owner.role}/handbook"
    su = await db.superuser()
    try:
        # alice writes the same content into the shared collection: it is not linked to the
        # owner's private set she cannot read (that would tell her the owner has it)
        shared = tmp_path / "shared"
        shared.mkdir()
        shutil.copy(NOTES, shared / "notes.md")
        out = _json(alice.steps("ingest", str(shared), "--collection", handbook, "--json"))
        assert out["indexed"] == 1 and out["linked"] == 0, out
        sets = await _sets(su, NOTES)
        assert [(s["owner"], s["creator"]) for s in sets] == [
            (owner.role, owner.role), (owner.role, alice.role)]
        private_set, shared_set = sets[0]["id"], sets[1]["id"]
        for person in (alice, bob):
            conn = await person.sql()
            try:
                assert await conn.fetchval("SELECT count(*) FROM chunks WHERE chunk_set_id = "
                                           "$1", private_set) == 0, person.role
                assert await conn.fetchval("SELECT count(*) FROM documents WHERE source_path "
                                           "= $1", str(secret)) == 0
                assert await conn.fetchval("SELECT count(*) FROM chunks WHERE chunk_set_id = "
                                           "$1", shared_set) > 0, person.role
            finally:
                await conn.close()
        # the shared collection is still searchable by the other member, and finds alice's file
        hits = _json(bob.steps("search", "lighthouse keeper", "--collection", handbook,
                               "--json"))["hits"]
        assert hits and any(h["path"].endswith(str(shared / "notes.md")) for h in hits)
        # alice removes her file: its document goes, the set stays for the owner to collect
        (shared / "notes.md").unlink()
        _ok(alice.steps("ingest", str(shared), "--collection", handbook, "--prune"))
        assert await su.fetchval("SELECT count(*) FROM documents WHERE chunk_set_id = $1",
                                 shared_set) == 0
        assert await su.fetchval("SELECT count(*) FROM chunk_embeddings e JOIN chunks c ON "
                                 "c.id = e.chunk_id WHERE c.chunk_set_id = $1", shared_set) == 0
        # the owner's next run removes it; the private copy is whole
        _ok(owner.steps("ingest", str(private), "--collection", "diary"))
        assert [s["id"] for s in await _sets(su, NOTES)] == [private_set]
        found = _json(owner.steps("search", "lighthouse keeper", "--collection", "diary",
                                  "--json"))["hits"]
        assert found and found[0]["path"] == str(secret)
    finally:
        await su.close()


async def test_a_member_watches_a_folder_and_verifies_citations(
        team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, owner, alice, bob = team
    folder = tmp_path / "watched"
    folder.mkdir()
    notes = folder / "notes.md"
    write_notes(notes)
    _ok(alice.steps("watch", "add", str(folder), "--collection", "notes"))
    assert str(folder) in _ok(alice.steps("watch", "list"))
    assert _ok(bob.steps("watch", "list")).strip() in ("", "no watched folders")
    _ok(alice.steps("watch", "--once"))
    asked = alice.steps("ask", "--json", "--collection", "notes",
                        "What did the turquoise lighthouse keeper log?")
    session_id = _json(asked)["session_id"]

    def states(person: Person = alice) -> list[str]:
        out = _json(person.steps("sessions", "verify", str(session_id), "--json"))
        return [c["citation"]["drift"]["state"] for c in out["citations"]
                if "turquoise" in c["citation"]["snippet"]]

    assert states()[:1] == ["current"]
    write_notes(notes, above=5)
    _ok(alice.steps("watch", "--once"))
    assert states()[:1] == ["moved"]
    notes.unlink()
    _ok(alice.steps("watch", "--once"))
    assert states()[:1] == ["missing"]
    # bob sees neither the session nor the folder
    out = bob.cli("sessions", "verify", str(session_id), "--json")
    assert out.returncode == 1 and f"no session with id {session_id}" in out.stderr
    conn = await bob.sql()
    try:
        assert await conn.fetchval("SELECT count(*) FROM watched_folders") == 0
    finally:
        await conn.close()
    su = await db.superuser()
    try:
        assert await su.fetchval("SELECT count(*) FROM watched_folders") == 1
    finally:
        await su.close()


async def test_the_owner_migrates_members_libraries_down_and_up(
        team, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    db, owner, alice, bob = team
    _ok(alice.steps("ingest", str(NOTES), "--collection", "mine"))
    _ok(bob.steps("ingest", str(DOCS), "--collection", "his"))
    su = await db.superuser()
    try:
        before = await su.fetchval("SELECT count(*) FROM chunks")
        # the owner is held to the policies (FORCE) but the revision rewrites every user's rows
        _ok(owner.steps("db", "downgrade", "0010_session_tools", "--yes"))
        assert await su.fetchval("SELECT count(*) FROM chunks") == before
        policies = await su.fetch("SELECT policyname, qual, with_check FROM pg_policies "
                                  "WHERE tablename = 'chunks'")
        assert len(policies) == 4
        assert all("collection_id" in (p["qual"] or p["with_check"]) for p in policies)
        assert not await su.fetchval("SELECT count(*) FROM pg_proc WHERE proname = "
                                     "'parley_chunk_set_of'")
        _ok(owner.steps("db", "upgrade"))
        assert await su.fetchval("SELECT count(*) FROM chunks") == before
        assert await su.fetchval("SELECT count(*) FROM chunks c WHERE NOT EXISTS (SELECT 1 "
                                 "FROM documents d WHERE d.chunk_set_id = c.chunk_set_id)") == 0
        owners = await su.fetch("SELECT DISTINCT u.name FROM chunk_sets s JOIN users u ON "
                                "u.id = s.user_id AND u.id = s.created_by ORDER BY 1")
        assert [r["name"] for r in owners] == sorted([alice.role, bob.role])
        tables = await su.fetch("SELECT relname, relrowsecurity, relforcerowsecurity FROM "
                                "pg_class WHERE relname IN ('chunk_sets', 'watched_folders', "
                                "'documents', 'chunks', 'chunk_embeddings', 'citations')")
        assert len(tables) == 6
        assert all(t["relrowsecurity"] and t["relforcerowsecurity"] for t in tables)
    finally:
        await su.close()
    conn = await alice.sql()
    try:
        mine = await conn.fetchval("SELECT count(*) FROM chunks")
        assert 0 < mine < before
    finally:
        await conn.close()
    hits = _json(bob.steps("search", "install", "--json"))["hits"]
    assert hits and all(h["path"].startswith(str(DOCS)) for h in hits)
