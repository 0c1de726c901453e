"""Row-level security for chunk sets on PostgreSQL (installed by ``0003_library_sync``).

Identical content is chunked and embedded once **per owner**: a chunk set belongs to the
user who owns the collections holding it (``chunk_sets.user_id``, the same user as those
documents' ``user_id``), so two users who ingest the same file get two chunk sets and
nothing links one user's documents to another's. A member writing into a collection shared
with write access creates sets in the owner's name and is recorded as ``created_by``.

- ``chunk_sets``: readable when the user owns it, created it, or can read a document
  pointing at it (``documents``' own policy applies inside: collections the user owns or
  that are shared with them). Inserted with ``created_by`` = the user, in the user's name
  or in the name of the owner of a collection the user may write. Changed and deleted by
  its owner only.
- ``chunks``: readable exactly when their chunk set is (the ``chunk_sets`` policy applies
  inside), so a chunk is seen only through a readable document (or by its owner). Inserted
  only into a set the user owns or created, with that set's ``user_id``; changed and
  deleted by the owner only (a writer of a shared collection never deletes chunks an
  identical private copy of the owner's may still need; ``store`` leaves such sets to the
  owner, whose next ingest removes them once no document holds them).
- ``documents`` (insert and update, on top of ``0006_teams``): a document may only point
  at a chunk set of its own owner that the user can already read (``parley_chunk_set_of``,
  run as the user: the ``chunk_sets`` policy applies inside). Without this, anyone
  could point a document of their own at another user's chunk set id and read its chunks
  through it.
- ``chunk_embeddings`` keep ``0006_teams``' policies (by collection): a collection holds
  vector rows only for the chunk sets its documents hold.
- ``watched_folders``: one user's rows (``rls.install_own_table``).
"""

from __future__ import annotations

from collections.abc import Callable

from engine.teams import rls

_UID = "(SELECT parley_uid())"
_WRITABLE = "((SELECT parley_writable_collections())::integer[])"
_OWNER_OF = "(SELECT c.user_id FROM collections c WHERE c.id = collection_id)"
# Through a function: a subquery on chunk_sets here would expand chunk_sets' read policy,
# which reads documents, inside documents' own policy (PostgreSQL refuses the recursion).
_OWN_SET = "(chunk_set_id IS NULL OR parley_chunk_set_of(chunk_set_id, user_id))"
_FUNCTION = """CREATE FUNCTION parley_chunk_set_of(set_id integer, owner integer)
RETURNS boolean LANGUAGE sql STABLE SET search_path = {schema}, pg_temp AS $$
  SELECT EXISTS (SELECT 1 FROM chunk_sets WHERE id = set_id AND user_id = owner)
$$"""
_FUNCTION_NAME = "parley_chunk_set_of(integer, integer)"

_CHUNK_SET_POLICIES = (
    f"CREATE POLICY parley_read ON chunk_sets FOR SELECT USING (user_id = {_UID} "
    f"OR created_by = {_UID} OR id IN (SELECT d.chunk_set_id FROM documents d))",
    f"CREATE POLICY parley_insert ON chunk_sets FOR INSERT WITH CHECK (created_by = {_UID} "
    f"AND (user_id = {_UID} OR user_id IN "
    f"(SELECT c.user_id FROM collections c WHERE c.id = ANY {_WRITABLE})))",
    f"CREATE POLICY parley_update ON chunk_sets FOR UPDATE USING (user_id = {_UID}) "
    f"WITH CHECK (user_id = {_UID})",
    f"CREATE POLICY parley_delete ON chunk_sets FOR DELETE USING (user_id = {_UID})",
)

_CHUNK_POLICIES = (
    "CREATE POLICY parley_read ON chunks FOR SELECT "
    "USING (chunk_set_id IN (SELECT s.id FROM chunk_sets s))",
    "CREATE POLICY parley_insert ON chunks FOR INSERT WITH CHECK ((chunk_set_id, user_id) IN "
    f"(SELECT s.id, s.user_id FROM chunk_sets s WHERE s.user_id = {_UID} "
    f"OR s.created_by = {_UID}))",
    f"CREATE POLICY parley_update ON chunks FOR UPDATE USING (user_id = {_UID}) "
    f"WITH CHECK (user_id = {_UID})",
    f"CREATE POLICY parley_delete ON chunks FOR DELETE USING (user_id = {_UID})",
)

_DOCUMENT_POLICIES = (
    "CREATE POLICY parley_insert ON documents FOR INSERT "
    f"WITH CHECK (collection_id = ANY {_WRITABLE} AND user_id = {_OWNER_OF} AND {_OWN_SET})",
    "CREATE POLICY parley_update ON documents FOR UPDATE "
    f"USING (collection_id = ANY {_WRITABLE}) "
    f"WITH CHECK (collection_id = ANY {_WRITABLE} AND user_id = {_OWNER_OF} AND {_OWN_SET})",
)


def _drop(execute: Callable[[str], object], table: str, names: tuple[str, ...]) -> None:
    for name in names:
        execute(f"DROP POLICY IF EXISTS {name} ON {table}")


_ALL = ("parley_read", "parley_insert", "parley_update", "parley_delete")


def drop_chunk_policies(execute: Callable[[str], object]) -> None:
    """Drop the policies on ``chunks`` (of either revision): before its columns change."""
    _drop(execute, "chunks", _ALL)


def install(execute: Callable[[str], object], schema: str) -> None:
    """The chunk-set policies, after ``chunks`` points at chunk sets (PostgreSQL only)."""
    execute(_FUNCTION.format(schema='"' + schema.replace('"', '""') + '"'))
    execute("ALTER TABLE chunk_sets ENABLE ROW LEVEL SECURITY")
    execute("ALTER TABLE chunk_sets FORCE ROW LEVEL SECURITY")
    _drop(execute, "chunks", _ALL)
    _drop(execute, "documents", ("parley_insert", "parley_update"))
    for statement in (*_CHUNK_SET_POLICIES, *_CHUNK_POLICIES, *_DOCUMENT_POLICIES):
        execute(statement)
    execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON chunk_sets TO {rls.MEMBER_ROLE}")
    rls.install_own_table(execute, "watched_folders")
    for table in ("chunk_sets", "watched_folders"):
        execute(f"GRANT USAGE, SELECT ON SEQUENCE {table}_id_seq TO {rls.MEMBER_ROLE}")


def uninstall(execute: Callable[[str], object]) -> None:
    """Back to ``0006_teams``' policies on ``documents`` (``chunks`` gets its own back from
    ``restore_chunk_policies`` once its collection column is there again)."""
    _drop(execute, "chunk_sets", _ALL)
    _drop(execute, "chunks", _ALL)
    _drop(execute, "documents", ("parley_insert", "parley_update"))
    for statement in rls.library_policies("documents"):
        if "parley_insert" in statement or "parley_update" in statement:
            execute(statement)
    execute(f"DROP FUNCTION IF EXISTS {_FUNCTION_NAME}")


def restore_chunk_policies(execute: Callable[[str], object]) -> None:
    """``0006_teams``' policies on ``chunks`` (by collection), for the downgrade."""
    for statement in rls.library_policies("chunks"):
        execute(statement)


FORCED = ("collections", "documents", "chunks", "chunk_embeddings", "citations")
"""Tables whose every user's rows this revision rewrites or checks: the owner running it is
held to the policies by FORCE, so FORCE is lifted for the revision's transaction (adding a
foreign key checks the existing rows as the current role: ``collections`` too)."""


def set_force(execute: Callable[[str], object], on: bool) -> None:
    """Hold the table owner to the policies (``on``), or not for a data migration."""
    for table in FORCED:
        execute(f"ALTER TABLE {table} {'' if on else 'NO '}FORCE ROW LEVEL SECURITY")
