"""PDF text per page with pypdfium2.

Pages are joined with a blank line; the loader reports each page's character span so
chunks can name their page. Caveats of PDFium's text layer, kept as they are:
- right-to-left scripts come out in PDFium's order, which for some producers (a ligature
  glyph mapped to a whole word) is the reverse of the logical order;
- glyphs whose ToUnicode entry is empty come out as their raw glyph code.
"""

from __future__ import annotations

import re
import threading
from typing import NamedTuple

import pypdfium2 as pdfium
import pypdfium2.raw as pdfium_c

from engine.errors import IngestError

# PDFium keeps global state and is not thread-safe; the pipeline loads files from several
# worker threads, so every PDFium call goes through this lock.
_PDFIUM_LOCK = threading.Lock()
_PAGE_SEPARATOR = "\n\n"
# Control characters PDFium emits for soft hyphens, unmapped glyphs and text-object
# boundaries; tab and newline stay.
_JUNK = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ufffe\uffff]")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
_NO_TITLE = frozenset({"untitled", "title", "document", "microsoft word"})


class PdfText(NamedTuple):
    """What the PDF loader extracts: ``pages`` holds (page, char_start, char_end)."""

    title: str | None
    text: str
    pages: tuple[tuple[int, int, int], ...]


def extract_pdf(data: bytes) -> PdfText:
    """Text and page spans of a PDF. Raises ``IngestError`` (encrypted, broken, no text)."""
    with _PDFIUM_LOCK:
        page_texts, meta_title = _read(data)
    parts: list[str] = []
    spans: list[tuple[int, int, int]] = []
    offset = 0
    for number, raw in enumerate(page_texts, start=1):
        text = _clean(raw)
        if parts:
            parts.append(_PAGE_SEPARATOR)
            offset += len(_PAGE_SEPARATOR)
        parts.append(text)
        spans.append((number, offset, offset + len(text)))
        offset += len(text)
    full = "".join(parts)
    if not full.strip():
        raise IngestError("no text layer (scanned/image-only PDF; OCR is not supported)")
    title = meta_title if _useful_title(meta_title) else None
    if title is None:
        title = next((ln.strip() for ln in full.split("\n") if ln.strip()), None)
    if title and len(title) > 200:
        title = title[:199] + "…"
    return PdfText(title, full, tuple(spans))


def _read(data: bytes) -> tuple[list[str], str | None]:
    try:
        doc = pdfium.PdfDocument(data)
    except pdfium.PdfiumError as exc:
        if getattr(exc, "err_code", None) == pdfium_c.FPDF_ERR_PASSWORD:
            raise IngestError("encrypted PDF (password protected)") from None
        raise IngestError(f"not a readable PDF: {_reason(exc)}") from None
    try:
        if len(doc) == 0:
            raise IngestError("not a readable PDF: it has no pages")
        texts = [_page_text(doc, i) for i in range(len(doc))]
        try:
            title: str | None = doc.get_metadata_dict().get("Title")
        except Exception:  # damaged metadata must not cost us the text
            title = None
        return texts, title
    finally:
        doc.close()


def _page_text(doc: pdfium.PdfDocument, index: int) -> str:
    try:
        page = doc[index]
    except pdfium.PdfiumError:
        return ""  # one damaged page: keep the others (its span stays empty)
    try:
        textpage = page.get_textpage()
        try:
            return textpage.get_text_bounded()
        finally:
            textpage.close()
    finally:
        page.close()


def _reason(exc: Exception) -> str:
    message = str(exc)
    m = re.search(r"PDFium: ([^)]*)", message)
    return (m.group(1) if m else message).strip().rstrip(".").lower() or "unknown error"


def _clean(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = _JUNK.sub("", text)
    return _TRAILING_SPACE.sub("\n", text).strip()


def _useful_title(title: str | None) -> bool:
    if not title or not title.strip():
        return False
    return title.strip().lower() not in _NO_TITLE
