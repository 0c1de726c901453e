"""The library: collections, their documents, search hits and re-embedding
(``engine.library``, ``engine.ingest.reembed``)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One chunk found by hybrid search, with what the explain mode shows."""

    rank: int
    score: float
    path: str
    document_id: int
    chunk_id: int
    page: int | None
    line_start: int | None
    line_end: int | None
    heading: str | None
    text: str
    keyword_rank: int | None = None
    vector_rank: int | None = None
    collection: str | None = None
    owner: str | None = None  # who shared the collection with you (None: your own)


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """A named set of documents indexed with one embedder."""

    id: int
    name: str
    embedder: str
    dimension: int
    document_count: int = 0
    chunk_count: int = 0
    owner: str | None = None  # who shared it with you (None: your own)
    access: str = "owner"  # "owner" | "read" | "write" (shared with you)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """An ingested (or failed) document."""

    id: int
    collection: str
    path: str
    title: str | None
    mime: str | None
    size: int
    status: str  # "indexed" | "error"
    error: str | None
    chunk_count: int
    indexed_at: datetime | None
    tags: tuple[str, ...] = ()
    copies: tuple[tuple[str, str], ...] = ()  # (collection, path) of identical copies


@dataclass(frozen=True, slots=True)
class ReindexProgress:
    """Progress of a re-embedding: sent after each batch of chunks."""

    collection: str
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class ReindexResult:
    """A finished re-embedding: the collection now searches with ``embedder``."""

    collection: str
    embedder: str
    dimension: int
    generation: int
    chunks: int  # chunks embedded by this call (a resumed run counts only its own)
    previous_embedder: str
    status: str = "complete"  # "complete" | "unchanged"
