"""Document loaders: kinds, decoding, titles, HTML and PDF text, and every way a file fails."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import IngestError
from engine.ingest.loaders import LoadedDocument, PageSpan, detect_kind, load_document

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "docs"
CORPUS = ROOT.parent / "shared" / "bench-data" / "docs-corpus"
EDGE = CORPUS / "pdf-edge-cases"
MB = 1 << 20


def load(path: Path, max_bytes: int = 10 * MB) -> LoadedDocument:
    return load_document(path, max_bytes=max_bytes)


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


# -- kinds -----------------------------------------------------------------------------------

@pytest.mark.parametrize(("name", "kind"), [
    ("a.txt", "text"), ("a.md", "markdown"), ("a.MARKDOWN", "markdown"), ("a.rst", "rst"),
    ("a.adoc", "asciidoc"), ("a.html", "html"), ("a.htm", "html"), ("a.pdf", "pdf"),
    ("a.py", "code"), ("a.rs", "code"), ("a.go", "code"), ("a.ts", "code"), ("a.c", "code"),
    ("a.h", "code"), ("a.cpp", "code"), ("a.java", "code"), ("a.rb", "code"),
    ("a.sh", "code"), ("a.toml", "code"), ("a.yaml", "code"), ("a.json", "code"),
    ("a.sql", "code"), ("Makefile", "code"), ("Dockerfile", "code"),
])
def test_kind_by_extension(tmp_path: Path, name: str, kind: str) -> None:
    assert detect_kind(tmp_path / name) == kind  # decided without reading the file


def test_unknown_extension_is_sniffed(tmp_path: Path) -> None:
    assert detect_kind(FIXTURES / "README") == "text"
    assert detect_kind(write(tmp_path, "notes.weird", b"plain words\nmore words\n")) == "text"
    assert detect_kind(write(tmp_path, "blob.bin", bytes(range(256)) * 8)) is None
    assert detect_kind(write(tmp_path, "image.png", b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR")) is None
    assert detect_kind(write(tmp_path, "empty.dat", b"")) is None
    assert detect_kind(tmp_path / "missing.dat") is None


# -- text decoding -----------------------------------------------------------------------------

def test_utf8_bom_is_dropped(tmp_path: Path) -> None:
    doc = load(write(tmp_path, "a.txt", "\ufeffHéllo wörld\n".encode()))
    assert doc.text == "Héllo wörld\n"


def test_utf16_with_bom(tmp_path: Path) -> None:
    doc = load(write(tmp_path, "a.txt", "Grüße\r\naus Köln\r\n".encode("utf-16")))
    assert doc.text == "Grüße\naus Köln\n"


def test_cp1252_fallback(tmp_path: Path) -> None:
    doc = load(write(tmp_path, "legacy.txt", "café naïve “quoted” – 10€\n".encode("cp1252")))
    assert doc.text == "café naïve “quoted” – 10€\n"


def test_latin1_when_not_cp1252(tmp_path: Path) -> None:
    # 0x81 is undefined in cp1252, so only latin-1 can read these bytes
    doc = load(write(tmp_path, "legacy.txt", b"caf\xe9 \x81 na\xefve\n"))
    assert doc.text == "café \x81 naïve\n"


def test_mostly_utf8_keeps_utf8(tmp_path: Path) -> None:
    data = "Grüße aus Köln, schöne Größe. ".encode() * 20 + b"one bad byte: \xff\n"
    doc = load(write(tmp_path, "a.md", data))
    assert "Grüße aus Köln" in doc.text and doc.text.count("\ufffd") == 1


def test_newlines_are_normalised(tmp_path: Path) -> None:
    doc = load(write(tmp_path, "a.txt", b"one\r\ntwo\rthree\n"))
    assert doc.text == "one\ntwo\nthree\n"


# -- failures ----------------------------------------------------------------------------------

def test_binary_with_text_extension(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="binary file"):
        load(write(tmp_path, "fake.txt", b"header\x00\x01\x02\x03" * 100))
    with pytest.raises(IngestError, match="binary file"):
        load(write(tmp_path, "fake.md", bytes(range(1, 32)) * 50))


@pytest.mark.parametrize("data", [b"", b"   \n\t\n  ", "\ufeff".encode()])
def test_empty_file(tmp_path: Path, data: bytes) -> None:
    with pytest.raises(IngestError, match="empty file"):
        load(write(tmp_path, "empty.md", data))


def test_too_large(tmp_path: Path) -> None:
    path = write(tmp_path, "big.txt", b"word " * 50_000)
    with pytest.raises(IngestError, match=r"file too large \(250,000 bytes; the limit is "
                                          r"100,000 bytes\)"):
        load(path, max_bytes=100_000)
    assert load(path, max_bytes=250_000).text.startswith("word word")


def test_unreadable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "secret.txt", b"hidden")

    def refuse(*args: object, **kwargs: object) -> None:
        raise PermissionError(13, "Permission denied")

    # chmod does not stop root, so refuse the read where the loader makes it
    monkeypatch.setattr(Path, "open", refuse)
    with pytest.raises(IngestError, match="permission denied"):
        load(path)


def test_missing_and_directory(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="file not found"):
        load(tmp_path / "gone.md")
    (tmp_path / "dir.md").mkdir()
    with pytest.raises(IngestError, match="not a regular file"):
        load(tmp_path / "dir.md")


def test_unsupported_binary(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="unsupported file type"):
        load(write(tmp_path, "a.bin", bytes(range(256))))


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(min_size=0, max_size=2000),
       name=st.sampled_from(["x.txt", "x.md", "x.rst", "x.adoc", "x.html", "x.pdf", "x.py", "x"]))
def test_bad_bytes_raise_only_ingest_error(tmp_path: Path, data: bytes, name: str) -> None:
    path = write(tmp_path, name, data)
    try:
        doc = load(path)
    except IngestError as exc:
        assert exc.message and "\n" not in exc.message
    else:
        assert doc.text.strip()


# -- titles and kinds of the fixtures ----------------------------------------------------------

@pytest.mark.parametrize(("name", "kind", "mime", "title"), [
    ("guide.md", "markdown", "text/markdown", "The Parley Guide"),
    ("pep-9999.rst", "rst", "text/x-rst", "A Sample Enhancement Proposal"),
    ("manual.adoc", "asciidoc", "text/asciidoc", "Parley Manual"),
    ("page.html", "html", "text/html", "Telescope Care & Handling"),
    ("echo.py", "code", "text/x-python", None),
    ("README", "text", "text/plain", "Project notes without a file extension."),
])
def test_fixture_documents(name: str, kind: str, mime: str, title: str | None) -> None:
    doc = load(FIXTURES / name)
    assert (doc.kind, doc.mime, doc.title) == (kind, mime, title)
    assert doc.path == str(FIXTURES / name) and doc.pages == ()


def test_markdown_title_without_front_matter(tmp_path: Path) -> None:
    path = write(tmp_path, "a.md", b"Intro line\n\n## Second level\n\n# Top level\n")
    assert load(path).title == "Top level"
    path = write(tmp_path, "b.md", b"```\n# not a heading\n```\n\n## Only heading\n")
    assert load(path).title == "Only heading"


def test_asciidoc_two_line_title(tmp_path: Path) -> None:
    path = write(tmp_path, "git-x.adoc", b"git-x(1)\n========\n\nNAME\n----\ngit-x - do x\n")
    assert load(path).title == "git-x(1)"
    # an underline is not a listing delimiter that would hide the rest of the file
    path = write(tmp_path, "y.adoc", b"NAME\n----\nfoo\n\nMORE\n----\nbar\n\n= Real Title\n")
    assert load(path).title == "Real Title"


# -- HTML --------------------------------------------------------------------------------------

def test_html_structure() -> None:
    text = load(FIXTURES / "page.html").text
    assert text.startswith("# Telescope care\n\nKeep the lens clean and dry.\n\n## Cleaning\n")
    assert "- Use a soft brush.\n- Never use solvents." in text
    assert "```\nclean --lens\ndry   --slowly\n```" in text  # <br> inside <pre> kept
    assert "Part | Interval\nLens | Monthly" in text
    for dropped in ("tracking", "color: red", "navigation link", "hidden", "comment", "[edit]"):
        assert dropped not in text


def test_html_declared_charset(tmp_path: Path) -> None:
    html = '<html><head><meta charset="windows-1252"><title>Café</title></head>' \
           '<body><p>naïve “quotes”</p></body></html>'
    doc = load(write(tmp_path, "a.html", html.encode("cp1252")))
    assert doc.title == "Café" and doc.text == "naïve “quotes”"


def test_html_prefers_main(tmp_path: Path) -> None:
    body = "<p>" + "Real article text. " * 20 + "</p>"
    html = f"<body><div>Site chrome</div><main><h1>Title</h1>{body}</main><div>More</div></body>"
    text = load(write(tmp_path, "a.html", html.encode())).text
    assert text.startswith("# Title\n\nReal article text.") and "chrome" not in text


def test_html_deep_nesting(tmp_path: Path) -> None:
    html = "<div>" * 5000 + "deep text" + "</div>" * 5000
    assert load(write(tmp_path, "deep.html", html.encode())).text == "deep text"


def test_html_without_text(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="no text in the HTML page"):
        load(write(tmp_path, "a.html", b"<html><script>x()</script><style>p{}</style></html>"))


# -- PDF ---------------------------------------------------------------------------------------

def test_pdf_pages_and_metadata_title() -> None:
    doc = load(CORPUS / "pdf" / "pdflatex-4-pages.pdf")
    assert doc.kind == "pdf" and doc.mime == "application/pdf"
    assert [p.page for p in doc.pages] == [1, 2, 3, 4]
    previous_end = 0
    for span in doc.pages:
        gap = doc.text[previous_end:span.char_start]
        assert span.char_start >= previous_end and not gap.strip()
        page_text = doc.text[span.char_start:span.char_end]
        assert page_text.strip() == page_text and page_text
        previous_end = span.char_end
    assert previous_end == len(doc.text)
    assert "\r" not in doc.text
    assert load(CORPUS / "pdf" / "google-doc-document.pdf").title == "PDF Example Document"


def test_pdf_title_falls_back_to_first_line() -> None:
    assert load(CORPUS / "pdf" / "crazyones-pdfa.pdf").title == "The Crazy Ones"


def test_arabic_pdf() -> None:
    doc = load(EDGE / "habibi.pdf")
    assert doc.title == "habibi" and "habibi" in doc.text
    assert {"ح", "ب", "ي"} <= set(doc.text)  # the Arabic word's letters
    assert not re.search(r"[\x00-\x08\x0b-\x1f]", doc.text)
    assert doc.pages == (PageSpan(1, 0, len(doc.text)),)


@pytest.mark.parametrize(("name", "reason"), [
    ("libreoffice-writer-password.pdf", r"^encrypted PDF \(password protected\)$"),
    ("unreadablemetadata.pdf", r"^not a readable PDF: "),
    ("cmyk-image.pdf", r"^no text layer \(scanned/image-only PDF; OCR is not supported\)$"),
])
def test_pdf_edge_cases(name: str, reason: str) -> None:
    with pytest.raises(IngestError, match=reason):
        load(EDGE / name)


def test_not_a_pdf(tmp_path: Path) -> None:
    with pytest.raises(IngestError, match="not a readable PDF: "):
        load(write(tmp_path, "fake.pdf", b"%PDF-1.7\nthis is not really a pdf\n"))


# -- the real corpus ---------------------------------------------------------------------------

def test_every_corpus_document_loads() -> None:
    """Every PEP, RFC, git manual, tldr page, HTML page and ordinary PDF users have here."""
    kinds: dict[str, int] = {}
    for path in sorted(CORPUS.rglob("*")):
        if not path.is_file() or path.parent == EDGE:
            continue
        kind = detect_kind(path)
        assert kind is not None, path
        doc = load(path, max_bytes=50 * MB)
        assert doc.text.strip(), path
        kinds[kind] = kinds.get(kind, 0) + 1
    assert set(kinds) == {"markdown", "rst", "asciidoc", "html", "pdf"}
    assert sum(kinds.values()) > 9000
