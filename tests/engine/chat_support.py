"""Documents and model replies shared by the chat tests (engine and command line).

``write_corpus`` writes a small library whose facts sit at known places: a Markdown file
(a fact on a known line), a three-page PDF (a fact on page 2 only) and an unrelated file.
``citing`` builds a test-server reply that cites whichever numbered source of the prompt
holds a keyword, the way a grounded model would.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

MARKDOWN = """\
# Parley storage notes

Parley keeps its data in one database file.
Backups are plain copies of that file.

## Encryption

Chat history is encrypted with Fernet tokens before it is written.
The key lives in a key file with mode 0600.

## Search

Search combines BM25 keyword ranking with vector similarity.
"""
MARKDOWN_FACT_LINE = 8  # "Chat history is encrypted with Fernet tokens ..."

PDF_PAGES = [
    "Flux manual, page one.\nThe device is assembled from a kit.\nRead every page first.",
    "Power requirements.\nThe flux capacitor needs 1.21 gigawatts to operate.\n"
    "A lightning strike can supply it.",
    "Maintenance.\nClean the contacts every month.\nStore it in a dry garage.",
]

COOKING = """\
# Pasta

Boil plenty of water with salt.
Cook the pasta for ten minutes, then drain it.
"""


def write_pdf(path: Path, pages: list[str]) -> Path:
    """A real PDF (Helvetica text, one string per line) with one entry of ``pages`` a page."""
    def escape(line: str) -> str:
        return line.replace("\\", "\\\\").replace("(", "\\(").replace(")", "\\)")

    count = len(pages)
    objects: dict[int, bytes] = {
        1: b"<< /Type /Catalog /Pages 2 0 R >>",
        2: (f"<< /Type /Pages /Kids [{' '.join(f'{3 + 2 * i} 0 R' for i in range(count))}] "
            f"/Count {count} >>").encode(),
        3 + 2 * count: b"<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica >>",
    }
    font = 3 + 2 * count
    for index, text in enumerate(pages):
        ops = "BT /F1 12 Tf 72 720 Td 16 TL " + " ".join(
            f"({escape(line)}) Tj T*" for line in text.splitlines()) + " ET"
        stream = ops.encode("latin-1")
        objects[3 + 2 * index] = (
            f"<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources "
            f"<< /Font << /F1 {font} 0 R >> >> /Contents {4 + 2 * index} 0 R >>").encode()
        objects[4 + 2 * index] = (f"<< /Length {len(stream)} >>\nstream\n".encode() + stream
                                  + b"\nendstream")
    out = bytearray(b"%PDF-1.4\n")
    offsets = {}
    for number in sorted(objects):
        offsets[number] = len(out)
        out += f"{number} 0 obj\n".encode() + objects[number] + b"\nendobj\n"
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    out += b"".join(f"{offsets[n]:010d} 00000 n \n".encode() for n in sorted(objects))
    out += (f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n"
            .encode())
    path.write_bytes(bytes(out))
    return path


def write_corpus(folder: Path) -> Path:
    """The test library (see the module docstring) in ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "storage.md").write_text(MARKDOWN, encoding="utf-8")
    (folder / "cooking.md").write_text(COOKING, encoding="utf-8")
    write_pdf(folder / "flux-manual.pdf", PDF_PAGES)
    return folder


_BLOCK = re.compile(r"^\[(\d+)\] .*?\n(.*?)(?=\n\n\[\d+\] |\n\nQuestion: )", re.M | re.S)


def sources_of(request: dict[str, Any]) -> dict[int, str]:
    """Marker -> passage text of the numbered sources in a chat request's last message."""
    content = request["messages"][-1]["content"]
    return {int(m.group(1)): m.group(2) for m in _BLOCK.finditer(content)}


def citing(keyword: str, template: str) -> Callable[[dict[str, Any]], str]:
    """A reply that cites the source holding ``keyword``: ``template`` with ``{n}``
    replaced by its marker (0 when no source holds it)."""
    def reply(request: dict[str, Any]) -> str:
        found = [n for n, text in sources_of(request).items() if keyword in text]
        return template.replace("{n}", str(found[0] if found else 0))

    return reply
