"""One file, from path to chunks: hash, compare with the index, load, chunk.

``prepare_file`` is blocking (the pipeline runs it in worker threads) and never raises for
anything about the file: every problem becomes a ``Prepared`` with outcome ``error`` and a
short reason, so one bad file cannot stop a run.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import os
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import IngestError
from engine.ingest.chunking import ChunkSpec, TokenCounter, chunk_document
from engine.ingest.loaders import LoadedDocument, load_document

_READ_BLOCK = 1 << 20
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


@dataclass(frozen=True, slots=True)
class Known:
    """What the index holds for a path: enough to decide whether to skip it."""

    id: int
    content_hash: str | None
    status: str


@dataclass(frozen=True, slots=True)
class PrepareOptions:
    """How files are read and cut."""

    max_bytes: int
    max_tokens: int
    overlap_tokens: int
    force: bool = False  # re-index files whose content did not change
    count_tokens: TokenCounter | None = None
    # (path, content hash) -> what already holds this content (a chunk set id, or the path
    # of a file of this run that claimed it first), or None: this file claims it.
    claim: Callable[[str, str], int | str | None] | None = None


@dataclass(slots=True)
class Prepared:
    """A file ready to index (chunks), to skip (unchanged) or to report (error)."""

    path: str
    path_hash: str
    outcome: str  # "index" | "skip" | "error" | "link" (same content as ``link``)
    size: int = 0
    mtime: float | None = None
    content_hash: str | None = None
    doc: LoadedDocument | None = None
    chunks: list[ChunkSpec] = field(default_factory=list)
    error: str | None = None
    link: int | str | None = None


def path_hash(path: str) -> str:
    """The key of a document within its collection (paths can be longer than an index)."""
    return hashlib.sha256(path.encode("utf-8")).hexdigest()


def file_sha256(path: Path) -> str:
    """sha256 of the file's bytes. Raises ``IngestError`` with a reason."""
    digest = hashlib.sha256()
    try:
        with path.open("rb") as fh:
            while block := fh.read(_READ_BLOCK):
                digest.update(block)
    except OSError as exc:
        raise IngestError(read_reason(exc)) from None
    return digest.hexdigest()


def read_reason(exc: OSError) -> str:
    """A short reason for a failed read, in the loaders' words."""
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "file not found (deleted while indexing?)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return "permission denied (cannot read the file)"
    if exc.errno == errno.EISDIR:
        return "not a regular file (a directory)"
    if exc.errno == errno.ELOOP:
        return "symlink loop (the link points back to itself)"
    return f"cannot read the file: {exc.strerror or exc}"


def _storable(doc: LoadedDocument) -> LoadedDocument:
    """The document with NUL characters and lone surrogates replaced by U+FFFD.

    PostgreSQL text cannot hold NUL and neither backend can encode a lone surrogate (PDF
    text layers have both). One character for one keeps every span exact.
    """
    if not _UNSTORABLE.search(doc.text) and not (doc.title and _UNSTORABLE.search(doc.title)):
        return doc
    return dataclasses.replace(doc, text=_UNSTORABLE.sub("\ufffd", doc.text),
                               title=_UNSTORABLE.sub("\ufffd", doc.title) if doc.title else None)


def prepare_file(path: Path, known: Known | None, opts: PrepareOptions) -> Prepared:
    """Hash ``path``; skip it when the index already holds this content; else load and chunk."""
    key = str(path)
    out = Prepared(key, path_hash(key), "error")
    try:
        st = os.stat(path)
        out.size, out.mtime = st.st_size, st.st_mtime
    except OSError as exc:
        out.error = read_reason(exc)
        return out
    try:
        # An oversized file is not read at all: load_document refuses it from its size.
        if st.st_size <= opts.max_bytes:
            out.content_hash = file_sha256(path)
            if (known is not None and not opts.force and known.status == "indexed"
                    and known.content_hash == out.content_hash):
                out.outcome = "skip"
                return out
            if opts.claim is not None and out.content_hash is not None:
                out.link = opts.claim(key, out.content_hash)
                if out.link is not None:
                    out.outcome = "link"
                    return out
        out.doc = _storable(load_document(path, max_bytes=opts.max_bytes))
        out.chunks = chunk_document(out.doc, max_tokens=opts.max_tokens,
                                    overlap_tokens=opts.overlap_tokens,
                                    count_tokens=opts.count_tokens)
        if not out.chunks:
            raise IngestError("no text to index")
    except IngestError as exc:
        out.error, out.doc, out.chunks = exc.message, None, []
        return out
    except Exception as exc:  # a chunker bug on strange input must not stop the run
        out.error, out.doc, out.chunks = f"cannot chunk the file: {type(exc).__name__}: {exc}", \
            None, []
        return out
    out.outcome = "index"
    return out
