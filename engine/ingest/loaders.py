"""Turn a file into text: which files are documents, and what text and pages they hold.

``load_document`` is blocking (the pipeline runs it in a worker thread) and raises only
``IngestError`` for anything wrong with the file, with a short reason the run records.

Decisions:
- The kind comes from the extension. Unknown extensions (and extension-less files such as
  ``README``) are sniffed: a file whose first 8 KiB look like text is ``text``; anything else
  is not a document (``detect_kind`` returns None) so binaries are skipped, not reported.
- Text decoding (see ``loaders_text.decode_text``): a BOM wins; else strict UTF-8; else UTF-8
  with replacement when the file is mostly valid UTF-8 with a few damaged bytes; else cp1252
  (the usual legacy encoding of Western text), and latin-1 for the five bytes cp1252 leaves
  undefined. A file with NUL bytes or many control characters is binary, whatever its name.
- Line endings become ``\\n`` (``\\r\\n`` and lone ``\\r`` both count as one line break), so
  the line numbers of chunks are the line numbers an editor shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from engine.errors import IngestError
from engine.ingest import loaders_text

_SNIFF_BYTES = 8192

_KIND_BY_EXT: dict[str, str] = {
    "txt": "text", "text": "text", "log": "text", "tex": "text",
    "md": "markdown", "markdown": "markdown", "mdown": "markdown", "mkd": "markdown",
    "mdx": "markdown",
    "rst": "rst", "rest": "rst",
    "adoc": "asciidoc", "asciidoc": "asciidoc",
    "html": "html", "htm": "html", "xhtml": "html",
    "pdf": "pdf",
}

# Source files: extension -> language, which also names the mime type (text/x-<language>).
_CODE_LANG: dict[str, str] = {
    "py": "python", "pyi": "python", "rs": "rust", "go": "go", "js": "javascript",
    "mjs": "javascript", "cjs": "javascript", "jsx": "javascript", "ts": "typescript",
    "tsx": "typescript", "c": "c", "h": "c", "cc": "c++", "cpp": "c++", "cxx": "c++",
    "hpp": "c++", "hh": "c++", "java": "java", "kt": "kotlin", "kts": "kotlin",
    "scala": "scala", "rb": "ruby", "php": "php", "pl": "perl", "pm": "perl", "lua": "lua",
    "r": "r", "swift": "swift", "m": "objective-c", "cs": "csharp", "fs": "fsharp",
    "dart": "dart", "ex": "elixir", "exs": "elixir", "erl": "erlang", "hs": "haskell",
    "ml": "ocaml", "clj": "clojure", "el": "emacs-lisp", "lisp": "lisp", "zig": "zig",
    "nim": "nim", "jl": "julia", "sh": "shell", "bash": "shell", "zsh": "shell",
    "fish": "shell", "ps1": "powershell", "bat": "batch", "vim": "vim", "sql": "sql",
    "toml": "toml", "yaml": "yaml", "yml": "yaml", "json": "json", "jsonc": "json",
    "ini": "ini", "cfg": "ini", "conf": "config", "xml": "xml", "css": "css", "scss": "scss",
    "less": "less", "vue": "vue", "svelte": "svelte", "proto": "protobuf",
    "graphql": "graphql", "tf": "terraform", "nix": "nix", "cmake": "cmake",
    "gradle": "gradle", "mk": "make",
}
_CODE_NAMES: dict[str, str] = {
    "makefile": "make", "gnumakefile": "make", "dockerfile": "dockerfile",
    "containerfile": "dockerfile", "cmakelists.txt": "cmake", "justfile": "just",
}
_MIME: dict[str, str] = {
    "text": "text/plain", "markdown": "text/markdown", "rst": "text/x-rst",
    "asciidoc": "text/asciidoc", "html": "text/html", "pdf": "application/pdf",
}


@dataclass(frozen=True, slots=True)
class PageSpan:
    """The characters ``text[char_start:char_end]`` of a document that come from one page."""

    page: int  # 1-based
    char_start: int
    char_end: int


@dataclass(frozen=True, slots=True)
class LoadedDocument:
    """A file's text, ready for chunking.

    ``pages`` is empty for documents without pages; for PDFs it covers every page in order,
    and the text between two spans is only whitespace (the page separator).
    """

    path: str
    kind: str  # text | markdown | rst | asciidoc | html | pdf | code
    mime: str
    title: str | None
    text: str
    pages: tuple[PageSpan, ...] = ()


def _code_language(path: Path) -> str | None:
    name = path.name.lower()
    if name in _CODE_NAMES:
        return _CODE_NAMES[name]
    return _CODE_LANG.get(path.suffix.lower().lstrip("."))


def detect_kind(path: Path) -> str | None:
    """The document kind of ``path``, or None when it is not a supported document.

    Decided by the extension; files with an unknown or no extension are read (8 KiB) and
    count as ``text`` when they look like text. An unreadable file of unknown type is None.
    """
    ext = path.suffix.lower().lstrip(".")
    if ext in _KIND_BY_EXT:
        return _KIND_BY_EXT[ext]
    if _code_language(path) is not None:
        return "code"
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError:
        return None
    if head.strip() and not loaders_text.looks_binary(head):
        return "text"
    return None


def _read_capped(path: Path, max_bytes: int) -> bytes:
    try:
        size = path.stat().st_size
        if size > max_bytes:
            raise IngestError(f"file too large ({_mb(size)}; the limit is {_mb(max_bytes)})")
        with path.open("rb") as fh:
            # read one byte past the cap: the file may have grown since stat()
            data = fh.read(max_bytes + 1)
    except FileNotFoundError:
        raise IngestError("file not found (deleted while indexing?)") from None
    except IsADirectoryError:
        raise IngestError("not a regular file (a directory)") from None
    except PermissionError:
        raise IngestError("permission denied (cannot read the file)") from None
    except OSError as exc:
        raise IngestError(f"cannot read the file: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise IngestError(f"file too large (over {_mb(max_bytes)}, the limit)")
    return data


def _mb(n: int) -> str:
    return f"{n / 1_048_576:.1f} MB" if n >= 1_048_576 else f"{n:,} bytes"


def load_document(path: Path, *, max_bytes: int) -> LoadedDocument:
    """Read ``path`` and extract its text, title and pages. Raises ``IngestError``."""
    kind = detect_kind(path)
    if kind is None:
        if path.is_dir():
            raise IngestError("not a regular file (a directory)")
        if not path.exists():
            raise IngestError("file not found (deleted while indexing?)")
        raise IngestError("unsupported file type (binary or unknown format)")
    data = _read_capped(path, max_bytes)
    if not data.strip():
        raise IngestError("empty file")
    try:
        return _load(path, kind, data)
    except IngestError:
        raise
    except RecursionError:
        raise IngestError(f"{kind} file is nested too deeply to parse") from None
    except Exception as exc:  # a parser bug on hostile input must not stop the run
        raise IngestError(f"cannot parse {kind} file: {type(exc).__name__}: {exc}") from None


def _load(path: Path, kind: str, data: bytes) -> LoadedDocument:
    if kind == "pdf":
        from engine.ingest.loaders_pdf import extract_pdf

        pdf = extract_pdf(data)
        pages = tuple(PageSpan(p, s, e) for p, s, e in pdf.pages)
        return LoadedDocument(str(path), kind, _MIME[kind], pdf.title, pdf.text, pages)
    if kind == "html":
        from engine.ingest.loaders_html import extract_html

        html = extract_html(data)
        return LoadedDocument(str(path), kind, _MIME[kind], html.title, html.text)
    text = loaders_text.decode_text(data)
    if not text.strip():
        raise IngestError("empty file")
    if kind == "code":
        mime = f"text/x-{_code_language(path) or 'source'}"
        return LoadedDocument(str(path), kind, mime, None, text)
    return LoadedDocument(str(path), kind, _MIME[kind], loaders_text.find_title(text, kind), text)
