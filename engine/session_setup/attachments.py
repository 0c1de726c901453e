"""Files attached to a question: read, checked, numbered as sources, stored encrypted.

Any format Parley ingests can be attached (text, Markdown, HTML, PDF with its pages, source
code). The text is split like an ingested document (pages, headings, paragraphs, at about
``PIECE_TOKENS`` tokens) so each piece is a numbered source with its own page and lines, and
the answer cites an attachment exactly like a retrieved passage: the citation points at the
file path and lines. Attached sources come first (``[1]``..), retrieved ones after them.

Every attached piece must fit the prompt: an attachment too large for the model's context
window refuses the question before anything is stored, and says to ingest the file instead.
A missing, unreadable, binary or empty file is refused the same way, in one line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from engine.chat.prompt import estimate_tokens
from engine.db import models as m
from engine.errors import ContextTooLong, IngestError, UsageError
from engine.types import AttachmentInfo, SearchHit

PIECE_TOKENS = 400
STDIN = "stdin"
PASTED = "pasted text"


@dataclass(frozen=True, slots=True)
class LoadedAttachment:
    """An attachment's text, ready to number and store."""

    path: str
    kind: str
    text: str
    pages: tuple[tuple[int, int, int], ...] = ()  # (page, char_start, char_end)

    def info(self) -> AttachmentInfo:
        """What front ends show of it."""
        return AttachmentInfo(path=self.path, kind=self.kind,
                              lines=len(self.text.splitlines()), tokens=estimate_tokens(self.text))


class AttachmentError(UsageError):
    """An attachment that cannot be used: missing, unreadable, binary or empty."""


def load_attachment(path: str | Path, *, max_bytes: int) -> LoadedAttachment:
    """Read a file to attach. Raises ``AttachmentError`` with the reason, in one line."""
    from engine.ingest.loaders import load_document

    target = Path(path).expanduser()
    if not target.exists():
        raise AttachmentError(f"cannot attach {path}: no such file", "check the path")
    if target.is_dir():
        raise AttachmentError(f"cannot attach {path}: it is a directory",
                              f"ingest a folder instead: parley ingest {path}")
    try:
        doc = load_document(target, max_bytes=max_bytes)
    except IngestError as exc:
        reason = exc.message.replace("unsupported file type (binary or unknown format)",
                                     "it is binary or in a format Parley cannot read")
        raise AttachmentError(f"cannot attach {path}: {reason}",
                              "attach text, Markdown, HTML, PDF or source files") from None
    return LoadedAttachment(str(path), doc.kind, doc.text,
                            tuple((p.page, p.char_start, p.char_end) for p in doc.pages))


def text_attachment(text: str, name: str = STDIN) -> LoadedAttachment:
    """Text given directly (stdin, a paste). Raises ``AttachmentError`` when empty or binary."""
    if "\x00" in text:
        raise AttachmentError(f"cannot attach {name}: it is binary", "attach text")
    if not text.strip():
        raise AttachmentError(f"cannot attach {name}: it is empty", "attach some text")
    return LoadedAttachment(name, "text", text.replace("\r\n", "\n"))


def attachment_hits(attachments: Sequence[LoadedAttachment]) -> list[SearchHit]:
    """Every attachment split into pieces, as sources numbered before the retrieved ones."""
    from engine.ingest.chunking import chunk_document
    from engine.ingest.loaders import LoadedDocument, PageSpan

    hits: list[SearchHit] = []
    for attachment in attachments:
        doc = LoadedDocument(attachment.path, attachment.kind, "text/plain", None,
                             attachment.text, tuple(PageSpan(*p) for p in attachment.pages))
        for spec in chunk_document(doc, max_tokens=PIECE_TOKENS, overlap_tokens=0,
                                   count_tokens=estimate_tokens):
            hits.append(SearchHit(
                rank=len(hits) + 1, score=1.0, path=attachment.path,
                document_id=None, chunk_id=None,  # type: ignore[arg-type]  # not in the library
                page=spec.page, line_start=spec.line_start, line_end=spec.line_end,
                heading=spec.heading_path, text=spec.text, collection=None))
    return hits


def too_large(attachments: Sequence[LoadedAttachment], needed: int, window: int,
              reserve: int) -> ContextTooLong:
    """The error for attachments that do not fit the model's context window."""
    names = ", ".join(a.path for a in attachments)
    target = next((a.path for a in attachments if a.path not in (STDIN, PASTED)), "FILE")
    return ContextTooLong(
        f"the attachment {names} needs about {needed:,} tokens with the question, but the "
        f"model's context window is {window:,} tokens with {reserve:,} kept for the answer",
        f"ingest it instead and ask about it: parley ingest {target} --collection NAME")


def store_in(s: AsyncSession, user_id: int, message_id: int,
             attachments: Sequence[LoadedAttachment]) -> None:
    """Add the attachments of a question to the caller's transaction (text encrypted)."""
    s.add_all(m.Attachment(user_id=user_id, message_id=message_id, position=n, path=a.path,
                           kind=a.kind, text=a.text, pages=[list(p) for p in a.pages])
              for n, a in enumerate(attachments))


async def stored(s: AsyncSession, message_id: int) -> list[LoadedAttachment]:
    """The attachments stored with a question, in order."""
    rows = await s.scalars(select(m.Attachment).where(m.Attachment.message_id == message_id)
                           .order_by(m.Attachment.position))
    return [LoadedAttachment(r.path, r.kind, r.text, tuple(tuple(p) for p in r.pages or ()))
            for r in rows]
