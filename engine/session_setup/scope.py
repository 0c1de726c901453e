"""Which documents a chat searches.

A session that names collections searches those; one that names none searches every
collection of its user (a new user who ingests into ``work`` gets answers from it with no
extra step). A collection indexed with another embedder than the configured one cannot be
searched by vectors: in a chat it is searched by keywords alone and the scope says so
(``parley search`` still refuses it, naming the command that re-embeds).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from engine.errors import NotFound
from engine.types import ChatScope

if TYPE_CHECKING:
    from engine.facade import Engine

NOTHING_INDEXED_HINT = ("add documents with: parley ingest PATH --collection NAME "
                        "(or the Library screen, F4)")


async def resolve_scope(engine: Engine, scoped: Sequence[str], *, rag: bool) -> ChatScope:
    """The scope of a chat naming ``scoped`` collections (empty: all of them)."""
    infos = await engine.library.collections()
    by_name = {info.name: info for info in infos}
    if scoped:
        missing = [name for name in dict.fromkeys(scoped) if name not in by_name]
        if missing:
            raise NotFound(f"no collection named {', '.join(missing)}",
                           "list them: parley collections list")
        chosen = [by_name[name] for name in dict.fromkeys(scoped)]
    else:
        chosen = list(infos)
    keyword_only: tuple[str, ...] = ()
    if rag and chosen:
        embedder = _embedder_name(engine)
        keyword_only = tuple(c.name for c in chosen
                             if embedder is not None and c.chunk_count and c.embedder != embedder)
    return ChatScope(collections=tuple(c.name for c in chosen), all=not scoped,
                     documents=sum(c.document_count for c in chosen), rag=rag,
                     keyword_only=keyword_only)


def _embedder_name(engine: Engine) -> str | None:
    try:
        return engine.embedder().name
    except Exception:  # a broken embedder config is reported when a search needs it
        return None


def scope_notes(scope: ChatScope) -> list[str]:
    """What to tell the user when a chat starts: what it searches, and what is missing."""
    if not scope.rag:
        return ["not searching your documents (RAG is off for this chat)"]
    if not scope.collections or not scope.documents:
        return [f"nothing is indexed yet: {NOTHING_INDEXED_HINT}"]
    names = ", ".join(scope.collections)
    notes = [f"searching all your collections ({len(scope.collections)}): {names}"
             if scope.all else f"searching: {names}"]
    for name in scope.keyword_only:
        notes.append(f"collection '{name}' was indexed with another embedder: searched by "
                     f"keywords only (re-embed it: parley reindex --embed --collection {name})")
    return notes


def searched_where(scope: ChatScope) -> str:
    """What was searched, for a sentence: ``all your collections (a, b)`` or ``collection
    a``, saying when nothing is indexed there."""
    if not scope.collections:
        return "your documents (nothing is indexed yet)"
    names = ", ".join(scope.collections)
    where = (f"all your collections ({names})" if scope.all else
             ("collection " if len(scope.collections) == 1 else "collections ") + names)
    return where if scope.documents else f"{where} (nothing is indexed there yet)"


def nothing_found_note(scope: ChatScope) -> str:
    """One line saying what was searched when no source matched."""
    if not scope.documents:
        return f"nothing to search in {searched_where(scope)}: {NOTHING_INDEXED_HINT}"
    return f"no relevant source found in {searched_where(scope)}"
