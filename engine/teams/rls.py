"""Row-level security on PostgreSQL: the policies, the member group role and its grants.

Installed by migration ``0006_teams`` (and removed by its downgrade); SQLite gets nothing.

- ``parley_uid()`` maps ``session_user`` to ``users.id``. ``session_user`` (the role that
  logged in), not ``current_user``: it stays the member inside the one SECURITY DEFINER
  function below, so the owner's privileges never widen whose rows it sees.
- Every user-owned table has ``ENABLE`` + ``FORCE ROW LEVEL SECURITY`` (FORCE: the schema
  owner is held to the policies too when it uses Parley as a user; only superusers and
  ``BYPASSRLS`` roles see past them). History, usage, runs, audit rows and key facts admit
  only ``user_id = parley_uid()``. Collections, documents, chunks, vectors and tags admit
  the rows of collections the user owns or that are shared with them
  (``collection_shares``); writing needs ownership or a share with write access. Since
  ``0003_library_sync`` chunks belong to chunk sets and are admitted through the documents
  pointing at them (``engine.teams.rls_chunks``).
- ``users`` has RLS enabled but not forced: members read it (owner names for shared
  collections, ``team list``) and cannot write it; the owner adds and removes members.
- A table added later whose rows belong to one user needs the same: its revision calls
  ``install_own_table``. A later data migration that rewrites every user's rows must lift
  FORCE for its transaction (the owner is held to the policies too).
- Policies call the helper functions through ``(SELECT f())`` so each query evaluates them
  once (an InitPlan), not once per row.
- ``parley_member`` (a NOLOGIN group role) gets DML on the user-owned tables, SELECT on
  ``users``, ``parley_meta`` and ``alembic_version``, sequences, and EXECUTE on
  ``parley_vector_index``: creating a collection's HNSW index is DDL, which only the
  table owner may run, so that function (SECURITY DEFINER, fixed ``search_path``) runs it
  for the collection's writers only. No member gets DDL, ownership or BYPASSRLS.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

MEMBER_ROLE = "parley_member"

OWN_TABLES = ("sessions", "messages", "citations", "token_usage", "ingestion_runs",
              "audit_log", "user_keys")
"""Tables whose rows belong to exactly one user (``user_id``)."""

LIBRARY_TABLES = ("documents", "chunks", "chunk_embeddings")
"""Tables whose rows belong to a collection (``collection_id``), shareable."""

OTHER_TABLES = ("collections", "collection_shares", "session_collections", "document_tags")

FORCED_TABLES = OWN_TABLES + LIBRARY_TABLES + OTHER_TABLES

_UID = "(SELECT parley_uid())"
# ANY over an array expression, not over a subquery's rows: hence the cast
_READABLE = "((SELECT parley_readable_collections())::integer[])"
_WRITABLE = "((SELECT parley_writable_collections())::integer[])"

_FUNCTIONS = """
CREATE FUNCTION parley_uid() RETURNS integer LANGUAGE sql STABLE
SET search_path = {schema}, pg_temp AS $$
  SELECT id FROM users WHERE name = session_user
$$;
CREATE FUNCTION parley_shared_collections() RETURNS integer[] LANGUAGE sql STABLE
SET search_path = {schema}, pg_temp AS $$
  SELECT coalesce(array_agg(collection_id), '{{}}') FROM collection_shares
  WHERE parley_uid() IS NOT NULL AND (grantee_id = parley_uid() OR grantee_id IS NULL)
$$;
CREATE FUNCTION parley_readable_collections() RETURNS integer[] LANGUAGE sql STABLE
SET search_path = {schema}, pg_temp AS $$
  SELECT coalesce(array_agg(id), '{{}}') FROM collections
$$;
CREATE FUNCTION parley_writable_collections() RETURNS integer[] LANGUAGE sql STABLE
SET search_path = {schema}, pg_temp AS $$
  SELECT coalesce(array_agg(id), '{{}}') FROM collections
  WHERE user_id = parley_uid() OR id IN (
    SELECT collection_id FROM collection_shares WHERE can_write
    AND parley_uid() IS NOT NULL AND (grantee_id = parley_uid() OR grantee_id IS NULL))
$$;
CREATE FUNCTION parley_vector_index(cid integer, gen integer, dim integer, make boolean)
RETURNS void LANGUAGE plpgsql SECURITY DEFINER
SET search_path = {schema}, pg_temp AS $$
DECLARE
  name text := format('ix_vec_c%s_g%s', cid, gen);
BEGIN
  IF NOT (cid = ANY (parley_writable_collections())) THEN
    RAISE EXCEPTION 'role % may not change the index of collection %', session_user, cid
      USING ERRCODE = '42501';
  END IF;
  IF make THEN
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON chunk_embeddings USING hnsw '
                   '((embedding::vector(%s)) vector_cosine_ops) '
                   'WITH (m = 16, ef_construction = 64) '
                   'WHERE collection_id = %s AND generation = %s', name, dim, cid, gen);
  ELSE
    EXECUTE format('DROP INDEX IF EXISTS %I', name);
  END IF;
END
$$;
"""

_FUNCTION_NAMES = ("parley_vector_index(integer, integer, integer, boolean)",
                   "parley_writable_collections()", "parley_readable_collections()",
                   "parley_shared_collections()", "parley_uid()")


def library_policies(table: str) -> list[str]:
    """The by-collection policies of one of ``LIBRARY_TABLES`` (``chunks`` and
    ``documents`` get chunk-set policies later: ``engine.teams.rls_chunks``)."""
    owner_of = "(SELECT c.user_id FROM collections c WHERE c.id = collection_id)"
    owned = "" if table == "chunk_embeddings" else f" AND user_id = {owner_of}"
    return [
        f"CREATE POLICY parley_read ON {table} FOR SELECT "
        f"USING (collection_id = ANY {_READABLE})",
        f"CREATE POLICY parley_insert ON {table} FOR INSERT "
        f"WITH CHECK (collection_id = ANY {_WRITABLE}{owned})",
        f"CREATE POLICY parley_update ON {table} FOR UPDATE "
        f"USING (collection_id = ANY {_WRITABLE}) "
        f"WITH CHECK (collection_id = ANY {_WRITABLE}{owned})",
        f"CREATE POLICY parley_delete ON {table} FOR DELETE "
        f"USING (collection_id = ANY {_WRITABLE})",
    ]


def _policies(own: tuple[str, ...]) -> list[str]:
    out = []
    for table in own:
        out.append(f"CREATE POLICY parley_own ON {table} USING (user_id = {_UID}) "
                   f"WITH CHECK (user_id = {_UID})")
    for table in LIBRARY_TABLES:
        out += library_policies(table)
    shared = "((SELECT parley_shared_collections())::integer[])"
    out += [
        f"CREATE POLICY parley_read ON collections FOR SELECT "
        f"USING (user_id = {_UID} OR id = ANY {shared})",
        f"CREATE POLICY parley_insert ON collections FOR INSERT WITH CHECK (user_id = {_UID})",
        f"CREATE POLICY parley_update ON collections FOR UPDATE USING (user_id = {_UID}) "
        f"WITH CHECK (user_id = {_UID})",
        f"CREATE POLICY parley_delete ON collections FOR DELETE USING (user_id = {_UID})",
        # grantees see their shares (to find the collections); owners manage them
        f"CREATE POLICY parley_read ON collection_shares FOR SELECT "
        f"USING (owner_id = {_UID} OR grantee_id = {_UID} "
        f"OR (grantee_id IS NULL AND {_UID} IS NOT NULL))",
        f"CREATE POLICY parley_insert ON collection_shares FOR INSERT WITH CHECK "
        f"(owner_id = {_UID} AND collection_id IN "
        f"(SELECT id FROM collections WHERE user_id = {_UID}))",
        f"CREATE POLICY parley_update ON collection_shares FOR UPDATE "
        f"USING (owner_id = {_UID}) WITH CHECK (owner_id = {_UID})",
        f"CREATE POLICY parley_delete ON collection_shares FOR DELETE "
        f"USING (owner_id = {_UID})",
        "CREATE POLICY parley_own ON session_collections "
        "USING (session_id IN (SELECT id FROM sessions)) "
        f"WITH CHECK (session_id IN (SELECT id FROM sessions) "
        f"AND collection_id = ANY {_READABLE})",
        "CREATE POLICY parley_read ON document_tags FOR SELECT "
        "USING (document_id IN (SELECT id FROM documents))",
    ]
    writable_doc = (f"document_id IN (SELECT id FROM documents "
                    f"WHERE collection_id = ANY {_WRITABLE})")
    out += [
        f"CREATE POLICY parley_insert ON document_tags FOR INSERT WITH CHECK ({writable_doc})",
        f"CREATE POLICY parley_update ON document_tags FOR UPDATE USING ({writable_doc}) "
        f"WITH CHECK ({writable_doc})",
        f"CREATE POLICY parley_delete ON document_tags FOR DELETE USING ({writable_doc})",
        # members read every user's name; only the owner (not held by FORCE here) writes
        "CREATE POLICY parley_read ON users FOR SELECT USING (true)",
    ]
    return out


def install(execute: Callable[[str], object], schema: str,
            extra_own: tuple[str, ...] = ()) -> None:
    """Create the functions, policies, group role and grants in ``schema``.

    ``extra_own``: further tables with a ``user_id`` whose rows belong to one user (tables
    that other revisions created before this one), given the same policy."""
    quoted = '"' + schema.replace('"', '""') + '"'
    own = OWN_TABLES + tuple(extra_own)
    forced = FORCED_TABLES + tuple(extra_own)
    for statement in _FUNCTIONS.format(schema=quoted).split("\n$$;"):
        if statement.strip():
            execute(statement + "\n$$")
    for table in forced:
        execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
        execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    execute("ALTER TABLE users ENABLE ROW LEVEL SECURITY")
    for statement in _policies(own):
        execute(statement)
    # Roles are cluster-wide: another Parley database on this server may have made it.
    execute(f"""DO $$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = '{MEMBER_ROLE}') THEN
    CREATE ROLE {MEMBER_ROLE} NOLOGIN;
  END IF;
END $$""")
    execute(f"GRANT USAGE ON SCHEMA {quoted} TO {MEMBER_ROLE}")
    execute(f"GRANT SELECT ON users, parley_meta, alembic_version TO {MEMBER_ROLE}")
    execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(forced)} "
            f"TO {MEMBER_ROLE}")
    execute(f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {quoted} TO {MEMBER_ROLE}")
    execute("REVOKE ALL ON FUNCTION parley_vector_index(integer, integer, integer, boolean) "
            "FROM PUBLIC")
    execute("GRANT EXECUTE ON FUNCTION parley_vector_index(integer, integer, integer, "
            f"boolean) TO {MEMBER_ROLE}")
    # ANALYZE after a large ingest (planner statistics for BM25): PostgreSQL 17+ can grant it.
    execute(f"""DO $$ BEGIN
  IF current_setting('server_version_num')::int >= 170000 THEN
    EXECUTE 'GRANT MAINTAIN ON chunks TO {MEMBER_ROLE}';
  END IF;
END $$""")


def uninstall(execute: Callable[[str], object], schema: str,
              extra_own: tuple[str, ...] = ()) -> None:
    """Remove what ``install`` created (the group role stays: it is cluster-wide and other
    databases may use it; its grants here go)."""
    quoted = '"' + schema.replace('"', '""') + '"'
    for table in (*FORCED_TABLES, *extra_own, "users"):
        execute(f"DO $$ DECLARE p record; BEGIN FOR p IN SELECT policyname FROM pg_policies "
                f"WHERE schemaname = '{schema}' AND tablename = '{table}' LOOP "
                f"EXECUTE format('DROP POLICY %I ON {table}', p.policyname); END LOOP; END $$")
        execute(f"ALTER TABLE {table} NO FORCE ROW LEVEL SECURITY")
        execute(f"ALTER TABLE {table} DISABLE ROW LEVEL SECURITY")
    execute(f"""DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = '{MEMBER_ROLE}') THEN
    EXECUTE 'REVOKE ALL ON ALL TABLES IN SCHEMA {quoted} FROM {MEMBER_ROLE}';
    EXECUTE 'REVOKE ALL ON ALL SEQUENCES IN SCHEMA {quoted} FROM {MEMBER_ROLE}';
    EXECUTE 'REVOKE USAGE ON SCHEMA {quoted} FROM {MEMBER_ROLE}';
  END IF;
END $$""")
    for name in _FUNCTION_NAMES:
        execute(f"DROP FUNCTION IF EXISTS {name}")


def install_own_table(execute: Callable[[str], object], table: str) -> None:
    """RLS for a table added after ``0006_teams`` whose rows belong to one user (PostgreSQL
    only; call it from that table's revision)."""
    execute(f"ALTER TABLE {table} ENABLE ROW LEVEL SECURITY")
    execute(f"ALTER TABLE {table} FORCE ROW LEVEL SECURITY")
    execute(f"CREATE POLICY parley_own ON {table} USING (user_id = {_UID}) "
            f"WITH CHECK (user_id = {_UID})")
    execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {table} TO {MEMBER_ROLE}")
    # the schema owner's copy policy, once ``0008_copy_state`` has made its function
    execute(f"""DO $$ BEGIN
  IF to_regprocedure('parley_copy_all()') IS NOT NULL THEN
    EXECUTE 'CREATE POLICY parley_copy ON {table} USING ({_COPY_ALL}) WITH CHECK ({_COPY_ALL})';
  END IF;
END $$""")


COPY_ALL_SETTING = "parley.copy_all"
_COPY_ALL = "(SELECT parley_copy_all())"
COPY_STATE_TABLES = ("parley_copy_state", "parley_copy_map")


def install_copy_policies(execute: Callable[[str], object], schema: str) -> None:
    """Let the schema owner read and write every user's rows, for one session at a time.

    ``db copy``, ``backup`` and ``db check`` run by the owner must see the whole team (the
    owner is held to the policies by FORCE like everyone else). ``parley_copy_all()`` is
    true only when the session set ``parley.copy_all`` to ``on`` *and* ``session_user`` is
    a member of the role that owns the schema's tables, so a member who sets it gains
    nothing. One more permissive policy per forced table (OR'ed with the others), evaluated
    once per query. Members also get DML on the copy-state tables, whose rows belong to
    who ran the copy since ``0011_copy_state_owner`` (``install_own_table``)."""
    quoted = '"' + schema.replace('"', '""') + '"'
    execute(f"""CREATE FUNCTION parley_copy_all() RETURNS boolean LANGUAGE sql STABLE
SET search_path = {quoted}, pg_temp AS $$
  SELECT coalesce(current_setting('{COPY_ALL_SETTING}', true), '') = 'on'
    AND pg_has_role(session_user,
                    (SELECT relowner FROM pg_class WHERE oid = 'users'::regclass), 'MEMBER')
$$""")
    execute(f"""DO $$ DECLARE t record; BEGIN
  FOR t IN SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
           WHERE n.nspname = current_schema() AND c.relkind = 'r' AND c.relforcerowsecurity
  LOOP
    EXECUTE format('CREATE POLICY parley_copy ON %I USING ({_COPY_ALL}) '
                   'WITH CHECK ({_COPY_ALL})', t.relname);
  END LOOP;
END $$""")
    execute(f"GRANT SELECT, INSERT, UPDATE, DELETE ON {', '.join(COPY_STATE_TABLES)} "
            f"TO {MEMBER_ROLE}")


def uninstall_copy_policies(execute: Callable[[str], object], schema: str) -> None:
    """Remove what ``install_copy_policies`` created."""
    execute("""DO $$ DECLARE p record; BEGIN
  FOR p IN SELECT tablename FROM pg_policies WHERE schemaname = current_schema()
           AND policyname = 'parley_copy'
  LOOP
    EXECUTE format('DROP POLICY parley_copy ON %I', p.tablename);
  END LOOP;
END $$""")
    execute("DROP FUNCTION IF EXISTS parley_copy_all()")


async def vector_index(s: AsyncSession, backend: str, collection_id: int, generation: int,
                       dimension: int | None) -> None:
    """Create (``dimension`` given) or drop a collection generation's vector index.

    On PostgreSQL through ``parley_vector_index``, so members who may write the collection
    can, without owning the table; on SQLite the backend module does it directly."""
    from engine.db.search_backend import for_backend

    if backend != "postgresql":
        search = for_backend(backend)
        if dimension is None:
            await search.drop_vector_index(s, collection_id, generation)
        else:
            await search.create_vector_index(s, collection_id, generation, dimension)
        return
    await s.execute(text("SELECT parley_vector_index(:cid, :gen, :dim, :make)"),
                    {"cid": int(collection_id), "gen": int(generation),
                     "dim": int(dimension or 0), "make": dimension is not None})
