"""Chunking: structure, budgets, overlap, and the span invariants citations depend on."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.ingest.chunking import ChunkSpec, chunk_document
from engine.ingest.loaders import LoadedDocument, PageSpan, load_document
from engine.providers.embedders import count_tokens

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "docs"
CORPUS = ROOT.parent / "shared" / "bench-data" / "docs-corpus"

Counter = Callable[[str], int]
COUNTERS: dict[str, Counter | None] = {
    "wordpiece": None,  # the default: the embedder's tokenizer
    "words": lambda t: len(t.split()),
    "chars": len,  # counts whitespace too: not additive over pieces
    "thirds": lambda t: math.ceil(len(t) / 3),
}


def doc_of(text: str, kind: str = "markdown", pages: tuple[PageSpan, ...] = ()) -> LoadedDocument:
    return LoadedDocument("mem://doc", kind, "text/plain", None, text, pages)


def check(doc: LoadedDocument, chunks: list[ChunkSpec], max_tokens: int,
          counter: Counter | None) -> None:
    """Every guarantee of the chunker's docstring."""
    count = counter or count_tokens
    text = doc.text
    covered = bytearray(len(text))
    pages = {p.page: p for p in doc.pages}
    previous_start = -1
    for i, c in enumerate(chunks):
        assert c.index == i
        assert c.text == text[c.char_start:c.char_end]
        assert c.text and c.text == c.text.strip()
        assert c.content_hash == hashlib.sha256(c.text.encode()).hexdigest()
        assert c.token_count == count(c.text)
        assert c.token_count <= max_tokens or len(c.text) == 1
        assert len(c.text) <= max(64, 16 * max_tokens)
        assert c.char_start >= previous_start
        previous_start = c.char_start
        base = 0
        if c.page is not None:
            span = pages[c.page]
            assert span.char_start <= c.char_start and c.char_end <= span.char_end
            base = text.count("\n", 0, span.char_start)
        assert c.line_start == text.count("\n", 0, c.char_start) + 1 - base
        assert c.line_end == text.count("\n", 0, c.char_end - 1) + 1 - base
        covered[c.char_start:c.char_end] = b"\x01" * (c.char_end - c.char_start)
    missing = [i for i, ch in enumerate(text) if not ch.isspace() and not covered[i]]
    assert not missing, f"uncovered characters at {missing[:5]}"


# -- properties ----------------------------------------------------------------------------

_words = st.text(alphabet=st.sampled_from("abcdefghij KLM éü日本.,;!?-_/()"), min_size=1,
                 max_size=12)
_sentence = st.lists(_words, min_size=1, max_size=25).map(lambda ws: " ".join(ws) + ".")
_paragraph = st.lists(_sentence, min_size=1, max_size=6).map(" ".join)
_block = st.one_of(
    _paragraph,
    _paragraph.map(lambda p: p.replace(". ", ".\n")),
    st.tuples(st.integers(1, 4), _words).map(lambda t: "#" * t[0] + " " + t[1].strip() + "x"),
    _words.map(lambda w: f"{w.strip()}x\n" + "=" * (len(w.strip()) + 1)),
    _words.map(lambda w: f"{w.strip()}x\n" + "-" * (len(w.strip()) + 1)),
    _words.map(lambda w: f"== {w.strip()}x"),
    st.lists(_words, min_size=1, max_size=30).map(lambda ls: "```\n" + "\n".join(ls) + "\n```"),
    st.lists(_words, min_size=1, max_size=30).map(lambda ls: "----\n" + "\n".join(ls) + "\n----"),
    st.text(alphabet="ab+/=", min_size=50, max_size=3000),  # a long run without spaces
    st.text(min_size=1, max_size=200),  # anything at all
)
_separator = st.sampled_from(["\n\n", "\n", "\n\n\n", "\n \t\n", " "])


@st.composite
def documents(draw: st.DrawFn) -> LoadedDocument:
    blocks = draw(st.lists(_block, min_size=1, max_size=12))
    text = "".join(b + draw(_separator) for b in blocks)
    text = draw(st.sampled_from(["", "\n", "  "])) + text
    kind = draw(st.sampled_from(["markdown", "rst", "asciidoc", "html", "text", "code", "pdf"]))
    if kind != "pdf":
        return doc_of(text, kind)
    cuts = sorted(draw(st.lists(st.integers(0, len(text)), max_size=4, unique=True)))
    bounds = [0, *cuts, len(text)]
    pages = tuple(PageSpan(n + 1, a, b) for n, (a, b) in enumerate(zip(bounds, bounds[1:],
                                                                      strict=False)))
    return doc_of(text, "pdf", pages)


@settings(max_examples=150, deadline=None)
@given(doc=documents(), max_tokens=st.integers(1, 80), overlap=st.integers(0, 40),
       counter=st.sampled_from(sorted(COUNTERS)))
def test_invariants(doc: LoadedDocument, max_tokens: int, overlap: int, counter: str) -> None:
    fn = COUNTERS[counter]
    chunks = chunk_document(doc, max_tokens=max_tokens, overlap_tokens=overlap, count_tokens=fn)
    check(doc, chunks, max_tokens, fn)


@settings(max_examples=60, deadline=None)
@given(text=st.text(min_size=0, max_size=600), max_tokens=st.integers(1, 40),
       overlap=st.integers(0, 20))
def test_invariants_on_any_text(text: str, max_tokens: int, overlap: int) -> None:
    doc = doc_of(text, "text")
    chunks = chunk_document(doc, max_tokens=max_tokens, overlap_tokens=overlap)
    check(doc, chunks, max_tokens, None)


# -- structure -----------------------------------------------------------------------------

def fixture_chunks(name: str, max_tokens: int = 200, overlap: int = 30) -> list[ChunkSpec]:
    doc = load_document(FIXTURES / name, max_bytes=1 << 20)
    chunks = chunk_document(doc, max_tokens=max_tokens, overlap_tokens=overlap)
    check(doc, chunks, max_tokens, None)
    return chunks


def test_markdown_heading_paths() -> None:
    chunks = fixture_chunks("guide.md")
    paths = [c.heading_path for c in chunks]
    assert paths == [None, "Parley", "Parley > Install", "Parley > Install > Linux",
                     "Parley > Install > macOS", "Parley > Usage"]
    linux = chunks[3]
    assert linux.text.startswith("### Linux") and linux.text.endswith("```")
    assert "# create a virtual environment first" in linux.text  # a comment, not a heading
    assert (linux.line_start, linux.line_end) == (14, 22)


def test_rst_levels_follow_first_appearance() -> None:
    paths = [c.heading_path for c in fixture_chunks("pep-9999.rst")]
    assert paths == [None, "Overview", "Overview > Motivation",
                     "Overview > Motivation > Details", "Overview > Rationale"]


def test_asciidoc_headings_and_listing() -> None:
    chunks = fixture_chunks("manual.adoc")
    assert [c.heading_path for c in chunks] == [
        "Parley Manual", "Parley Manual > Install", "Parley Manual > Install > Linux",
        "Parley Manual > Configure", "Parley Manual > Troubleshooting"]
    assert "pip install parley\n\nparley --version\n----" in chunks[2].text


def test_html_headings() -> None:
    assert [c.heading_path for c in fixture_chunks("page.html")] == [
        "Telescope care", "Telescope care > Cleaning"]


def test_code_is_cut_at_lines_not_sentences() -> None:
    text = (FIXTURES / "echo.py").read_text()
    chunks = fixture_chunks("echo.py", max_tokens=20, overlap=0)
    assert len(chunks) > 2
    for c in chunks:
        line_head = text[text.rfind("\n", 0, c.char_start) + 1:c.char_start]
        assert not line_head.strip(), c  # starts at the start of a line
        assert c.char_end == len(text) or text[c.char_end] == "\n", c  # ends at a line end


def test_bare_parent_heading_joins_its_child() -> None:
    doc = doc_of("# Install\n\n## Linux\n\nUse apt.\n\n## macOS\n\nUse brew.\n")
    chunks = chunk_document(doc, max_tokens=50, overlap_tokens=0)
    assert [(c.heading_path, c.text) for c in chunks] == [
        ("Install > Linux", "# Install\n\n## Linux\n\nUse apt."),
        ("Install > macOS", "## macOS\n\nUse brew.")]


def test_fenced_code_kept_whole_when_it_fits() -> None:
    prose = " ".join(f"Sentence number {i} is here." for i in range(12))
    code = "\n".join(f"print({i})  # line {i}" for i in range(12))
    doc = doc_of(f"{prose}\n\n```python\n{code}\n```\n\n{prose}\n")
    code_tokens = count_tokens(f"```python\n{code}\n```")
    assert code_tokens < 100
    chunks = chunk_document(doc, max_tokens=100, overlap_tokens=10)
    check(doc, chunks, 100, None)
    assert any(f"```python\n{code}\n```" in c.text for c in chunks)


def test_long_paragraph_is_cut_at_sentences() -> None:
    text = " ".join(f"This is sentence {i} of a long paragraph." for i in range(60))
    chunks = chunk_document(doc_of(text), max_tokens=40, overlap_tokens=0)
    assert len(chunks) > 5
    assert all(c.text.endswith("paragraph.") and c.text.startswith("This") for c in chunks)


def test_overlap_within_a_section() -> None:
    text = "## Part\n\n" + " ".join(f"Fact {i} is true." for i in range(200))
    doc = doc_of(text)
    chunks = chunk_document(doc, max_tokens=60, overlap_tokens=15)
    check(doc, chunks, 60, None)
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.char_start < a.char_end  # they share text
        shared = count_tokens(doc.text[b.char_start:a.char_end])
        assert 5 <= shared <= 15


def test_no_overlap_across_sections() -> None:
    body = " ".join(f"Fact {i} is true." for i in range(60))
    doc = doc_of(f"## One\n\n{body}\n\n## Two\n\n{body}\n")
    chunks = chunk_document(doc, max_tokens=60, overlap_tokens=15)
    two = [c for c in chunks if c.heading_path == "Two"]
    one = [c for c in chunks if c.heading_path == "One"]
    assert two[0].text.startswith("## Two") and two[0].char_start >= one[-1].char_end


def test_unsplittable_run_is_cut_by_characters() -> None:
    doc = doc_of("start " + "ab+cd/" * 2000 + " end")
    chunks = chunk_document(doc, max_tokens=50, overlap_tokens=10)
    check(doc, chunks, 50, None)
    assert len(chunks) > 10
    long_word = doc_of("x" * 20_000)  # one [UNK] token: only the character cap cuts it
    chunks = chunk_document(long_word, max_tokens=50, overlap_tokens=10)
    check(long_word, chunks, 50, None)
    assert all(len(c.text) <= 800 for c in chunks) and len(chunks) == 25


def test_small_section_is_one_chunk_without_overlap_budget() -> None:
    text = " ".join(["word"] * 195)
    chunks = chunk_document(doc_of(text), max_tokens=200, overlap_tokens=30)
    assert len(chunks) == 1 and chunks[0].token_count == 195


def test_empty_and_bad_arguments() -> None:
    assert chunk_document(doc_of(" \n\n\t"), max_tokens=10, overlap_tokens=2) == []
    with pytest.raises(ValueError):
        chunk_document(doc_of("text"), max_tokens=0, overlap_tokens=0)


# -- pages ---------------------------------------------------------------------------------

def test_pdf_chunks_stay_on_their_page() -> None:
    doc = load_document(CORPUS / "pdf" / "pdflatex-4-pages.pdf", max_bytes=1 << 24)
    chunks = chunk_document(doc, max_tokens=200, overlap_tokens=30)
    check(doc, chunks, 200, None)
    assert {c.page for c in chunks} == {1, 2, 3, 4}
    for page in (1, 2, 3, 4):
        on_page = [c for c in chunks if c.page == page]
        assert on_page[0].line_start == 1  # lines count from the top of the page
        assert on_page[0].char_start == doc.pages[page - 1].char_start
        assert all(c.heading_path is None for c in on_page)


def test_text_outside_pages_is_kept() -> None:
    doc = doc_of("page one text\n\nstray words\n\npage two text", "pdf",
                 (PageSpan(1, 0, 13), PageSpan(2, 28, 41)))
    chunks = chunk_document(doc, max_tokens=50, overlap_tokens=0)
    check(doc, chunks, 50, None)
    assert [(c.page, c.text) for c in chunks] == [
        (1, "page one text"), (None, "stray words"), (2, "page two text")]


# -- the real corpus -----------------------------------------------------------------------

@pytest.mark.parametrize("relative", [
    "peps/pep-0008.rst", "git-docs/git-stash.adoc", "rust-rfcs/0002-rfc-process.md",
    "html/wikipedia-3.html", "html/ietf-1.html", "pdf/GeoTopo-komprimiert.pdf",
])
def test_corpus_documents(relative: str) -> None:
    doc = load_document(CORPUS / relative, max_bytes=1 << 26)
    chunks = chunk_document(doc, max_tokens=200, overlap_tokens=30)
    check(doc, chunks, 200, None)
    # chunks of 200 plus the model's [CLS] and [SEP] fit its 256-token window
    assert max(c.token_count for c in chunks) + 2 <= 256
