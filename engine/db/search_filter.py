"""Document filters of a search (tag, path glob, kind) as SQL, the same on both backends.

Every filter is a property of the document, so a filter is one boolean expression over the
``documents`` row of a chunk (alias ``d``). Values are always bound parameters; a path glob
keeps SQLite's GLOB meaning on both backends (PostgreSQL gets the equivalent regular
expression), so ``--path '*.md'`` selects the same documents everywhere.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class DocFilter:
    """Which documents a search may return. Values of one field are alternatives (OR);
    fields combine with AND. An empty filter lets every document through."""

    tags: tuple[str, ...] = ()
    path_globs: tuple[str, ...] = ()
    kinds: tuple[str, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.tags or self.path_globs or self.kinds)


def placeholders(prefix: str, values: Iterable[Any]) -> tuple[str, dict[str, Any]]:
    """``:p0, :p1, ...`` and their parameters, for an ``IN (...)`` list."""
    params = {f"{prefix}{i}": value for i, value in enumerate(values)}
    return ", ".join(f":{name}" for name in params), params


def normalise_glob(pattern: str) -> str:
    """A relative pattern matches at the end of any path: ``docs/*.md`` -> ``*/docs/*.md``."""
    pattern = pattern.strip()
    if pattern.startswith(("/", "*")) or "://" in pattern:
        return pattern
    return "*/" + pattern.removeprefix("./")


def glob_to_regex(pattern: str) -> str:
    """SQLite GLOB semantics (``*``, ``?``, ``[...]``, ``[^...]``) as an anchored POSIX regex."""
    out: list[str] = ["^"]
    i = 0
    while i < len(pattern):
        ch = pattern[i]
        if ch == "*":
            out.append(".*")
        elif ch == "?":
            out.append(".")
        elif ch == "[" and (end := _class_end(pattern, i)) > 0:
            body = pattern[i + 1:end]
            negate = body[:1] in ("^", "!")
            body = body[1:] if negate else body
            escaped = body.replace("\\", "\\\\").replace("[", "\\[")
            out.append("[" + ("^" if negate else "") + escaped + "]")
            i = end
        else:
            out.append(re.escape(ch))
        i += 1
    out.append("$")
    return "".join(out)


def _class_end(pattern: str, start: int) -> int:
    """Index of the ``]`` closing the class opened at ``start`` (-1 when unclosed)."""
    i = start + 1
    if i < len(pattern) and pattern[i] in "^!":
        i += 1
    if i < len(pattern) and pattern[i] == "]":  # a leading ] is a literal
        i += 1
    end = pattern.find("]", i)
    return end


def doc_conditions(flt: DocFilter, backend: str) -> tuple[str, dict[str, Any]]:
    """A boolean SQL expression over ``d`` (documents) and its parameters ("" when empty)."""
    clauses: list[str] = []
    params: dict[str, Any] = {}
    if flt.kinds:
        sql, p = placeholders("f_kind", flt.kinds)
        clauses.append(f"d.kind IN ({sql})")
        params.update(p)
    if flt.tags:
        sql, p = placeholders("f_tag", flt.tags)
        clauses.append("EXISTS (SELECT 1 FROM document_tags t WHERE t.document_id = d.id "
                       f"AND t.tag IN ({sql}))")
        params.update(p)
    if flt.path_globs:
        ors = []
        for i, glob in enumerate(flt.path_globs):
            name = f"f_path{i}"
            if backend == "postgresql":
                ors.append(f"d.source_path ~ :{name}")
                params[name] = glob_to_regex(normalise_glob(glob))
            else:
                ors.append(f"d.source_path GLOB :{name}")
                # shells and fnmatch negate a class with [!...], SQLite with [^...]
                params[name] = normalise_glob(glob).replace("[!", "[^")
        clauses.append("(" + " OR ".join(ors) + ")")
    return " AND ".join(clauses), params


def in_scope(chunk: str, collection_ids: Sequence[int], flt: DocFilter | None,
             backend: str, prefix: str = "f_cid") -> tuple[str, dict[str, Any]]:
    """A condition on chunk alias ``chunk``: it belongs to a document of ``collection_ids``
    that passes ``flt``. A chunk set is shared by identical copies, so the link goes
    through the documents (a semi-join: a chunk held by two copies is listed once)."""
    cond, params = doc_conditions(flt, backend) if flt else ("", {})
    cids, cparams = placeholders(prefix, collection_ids)
    sql = (f"{chunk}.chunk_set_id IN (SELECT d.chunk_set_id FROM documents d "
           f"WHERE d.collection_id IN ({cids})" + (f" AND {cond}" if cond else "") + ")")
    return sql, {**params, **cparams}


def chunk_ids_subquery(flt: DocFilter, backend: str,
                       collection_ids: Sequence[int]) -> tuple[str, dict[str, Any]]:
    """``SELECT c.id ...``: the chunks of ``collection_ids`` whose document passes ``flt``."""
    cond, params = in_scope("c", collection_ids, flt, backend)
    return f"SELECT c.id FROM chunks c WHERE {cond}", params
