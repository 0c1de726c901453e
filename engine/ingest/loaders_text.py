"""Text-like files: decoding, binary detection and titles."""

from __future__ import annotations

import codecs
import re

from engine.errors import IngestError
from engine.ingest.loaders_markup import (
    UNDERLINED,
    adornment,
    atx_heading,
    fence_closes,
    fence_open,
    underline,
    underline_level,
)

_BOMS: tuple[tuple[bytes, str], ...] = (
    # UTF-32 first: its little-endian BOM starts with the UTF-16 one
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
# C0 controls that never appear in text; tab, newlines, form feed and ESC (ANSI colours
# in logs) are allowed.
_CONTROL = bytes(b for b in range(32) if b not in (9, 10, 11, 12, 13, 27)) + b"\x7f"
_BINARY_CONTROL_RATIO = 0.02


def looks_binary(sample: bytes) -> bool:
    """True when ``sample`` (the start of a file) is not text in any encoding we read."""
    if any(sample.startswith(bom) for bom, _ in _BOMS):
        return False
    if b"\x00" in sample:
        return True
    controls = len(sample) - len(sample.translate(None, _CONTROL))
    return controls > _BINARY_CONTROL_RATIO * max(len(sample), 1)


def decode_text(data: bytes) -> str:
    """Decode a text file (policy in the ``loaders`` module docstring) with ``\\n`` newlines."""
    for bom, encoding in _BOMS:
        if data.startswith(bom):
            text = data[len(bom):].decode(encoding, errors="replace")
            if "\x00" in text:
                raise IngestError("binary file (NUL characters in a Unicode text file)")
            return _newlines(text)
    if b"\x00" in data or looks_binary(data[:8192]):
        raise IngestError("binary file (NUL bytes or control characters; not text)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = _decode_legacy(data)
    return _newlines(text)


def _decode_legacy(data: bytes) -> str:
    replaced = data.decode("utf-8", errors="replace")
    bad = replaced.count("\ufffd")
    non_ascii = len(replaced) - len(replaced.encode("ascii", errors="ignore"))
    # Legacy 8-bit text almost never forms valid multi-byte UTF-8 by chance, so real
    # non-ASCII characters outnumbering the damaged bytes means UTF-8 with a few bad bytes.
    if non_ascii - bad > bad:
        return replaced
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def _newlines(text: str) -> str:
    return text.replace("\r\n", "\n").replace("\r", "\n") if "\r" in text else text


# -- titles --------------------------------------------------------------------------------

_HEADER_FIELD = re.compile(r"(?im)^title:[ \t]*(\S.*)$")
_TITLE_MAX = 200


def find_title(text: str, kind: str) -> str | None:
    """The document's title: a ``Title:`` header field (PEPs, front matter), the first
    top-level heading, the first heading, or (plain text) the first non-blank line."""
    head = text[:4096]
    if kind in ("rst", "text", "markdown"):
        lines = head.split("\n\n", 1)[0] if kind != "markdown" else _front_matter(head)
        m = _HEADER_FIELD.search(lines)
        if m:
            return _clip(m.group(1).strip().strip("'\""))
    first: str | None = None
    lines = text.split("\n", 2000)[:2000]
    marker: str | None = None
    underlined = -1  # the index of an underline already read as part of a heading
    for i, line in enumerate(lines):
        if marker is not None:
            marker = None if fence_closes(marker, line, kind) else marker
            continue
        if i == underlined:
            continue
        marker = fence_open(line, kind)
        if marker is not None:
            continue
        level_title = atx_heading(line, kind)
        starts_block = i == 0 or not lines[i - 1].strip() or adornment(lines[i - 1]) is not None
        if level_title is None and i + 1 < len(lines) and starts_block:
            char = underline(line, lines[i + 1], kind)
            if char is not None:
                level = underline_level(char, kind) if kind not in UNDERLINED else 1
                level_title = (level, line.strip())
                underlined = i + 1
        if level_title is not None:
            if level_title[0] == 1:
                return _clip(level_title[1])
            first = first or level_title[1]
    if first is None and kind != "markdown":
        first = next((ln.strip() for ln in lines if ln.strip()), None)
    return _clip(first) if first else None


def _front_matter(head: str) -> str:
    if head.startswith("---\n"):
        end = head.find("\n---", 4)
        if end > 0:
            return head[4:end]
    return ""


def _clip(title: str) -> str:
    title = " ".join(title.split())
    return title if len(title) <= _TITLE_MAX else title[: _TITLE_MAX - 1] + "…"
