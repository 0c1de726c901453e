"""HTML to structured plain text with selectolax (lexbor).

Headings become Markdown ``#`` lines and ``<pre>`` blocks become fenced code, so the chunker
sees the page's structure with its Markdown rules. Scripts, styles, navigation and hidden
elements are dropped; when the page marks its content with one ``<main>`` (or one
``<article>``), only that is kept, which removes most site chrome.
"""

from __future__ import annotations

import codecs
import re
from typing import NamedTuple

from selectolax.lexbor import LexborHTMLParser, LexborNode

from engine.errors import IngestError
from engine.ingest.loaders_text import decode_text, looks_binary

_DROP = frozenset({
    "script", "style", "nav", "noscript", "template", "svg", "canvas", "iframe", "object",
    "embed", "head", "button", "select", "input", "textarea", "-comment",
    # MathML's TeX source repeats the formula that was just written out
    "annotation",
})
# Site chrome that sits inside the content (Wikipedia's "[edit]" links, skip links).
_CHROME_CLASSES = frozenset({"mw-editsection", "mw-jump-link", "skip-link", "visually-hidden"})
_HARD = frozenset({
    "p", "div", "section", "article", "main", "header", "footer", "aside", "blockquote",
    "ul", "ol", "dl", "table", "figure", "figcaption", "address", "details", "hr", "form",
    "fieldset", "center", "caption", "body",
})
_SOFT = frozenset({"li", "tr", "dt", "dd", "summary", "br"})
_HEADINGS = {f"h{n}": n for n in range(1, 7)}
_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# WHATWG: pages labelled latin-1 or ASCII are decoded as windows-1252.
_AS_CP1252 = frozenset({"latin-1", "iso8859-1", "ascii"})


class HtmlText(NamedTuple):
    """What the HTML loader extracts."""

    title: str | None
    text: str


def extract_html(data: bytes) -> HtmlText:
    """Text of an HTML page with Markdown-style headings. Raises ``IngestError``."""
    tree = LexborHTMLParser(_decode(data))
    title_node = tree.css_first("title")
    title = _collapse(title_node.text()) if title_node is not None else ""
    root = _content_root(tree)
    text = _Writer().render(root) if root is not None else ""
    if not text.strip():
        raise IngestError("no text in the HTML page (only markup or scripts)")
    if not title:
        h1 = tree.css_first("h1")
        title = _collapse(h1.text()) if h1 is not None else ""
    return HtmlText(title or None, text)


def _decode(data: bytes) -> str:
    m = _CHARSET.search(data[:4096])
    # a byte order mark outranks the declared charset (as in browsers)
    has_bom = data.startswith((codecs.BOM_UTF8, codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE))
    if m and not has_bom and not looks_binary(data[:8192]):
        try:
            name = codecs.lookup(m.group(1).decode("ascii")).name
        except (LookupError, UnicodeDecodeError):
            name = "utf-8"
        if name not in ("utf-8", "utf-8-sig"):
            name = "cp1252" if name in _AS_CP1252 else name
            return data.decode(name, errors="replace").replace("\r\n", "\n")
    return decode_text(data)


def _content_root(tree: LexborHTMLParser) -> LexborNode | None:
    for selector in ("main", "article"):
        found = tree.css(selector)
        if len(found) == 1 and len(found[0].text(strip=True)) >= 200:
            return found[0]
    return tree.body or tree.root


def _collapse(text: str) -> str:
    return " ".join(text.split())


def _pre_text(pre: LexborNode) -> str:
    """Raw text of a ``<pre>``: highlighters break lines with ``<br>`` or one ``<div>`` each."""
    out: list[str] = []
    stack = [pre.child] if pre.child is not None else []
    while stack:
        node = stack.pop()
        if node.next is not None:
            stack.append(node.next)
        if node.tag == "-text":
            out.append(node.text_content or "")
        elif node.tag == "br":
            out.append("\n")
        elif node.tag not in _DROP and node.child is not None:
            if node.tag in ("div", "p") and out and not out[-1].endswith("\n"):
                out.append("\n")
            stack.append(node.child)
    return "".join(out)


def _visible_text(node: LexborNode) -> str:
    """Text of an inline subtree without dropped or hidden elements."""
    out: list[str] = []
    stack = [node.child] if node.child is not None else []
    while stack:
        current = stack.pop()
        if current.next is not None:
            stack.append(current.next)
        if current.tag == "-text":
            out.append(current.text_content or "")
        elif current.tag not in _DROP and not _hidden(current) and current.child is not None:
            stack.append(current.child)
    return "".join(out)


def _hidden(node: LexborNode) -> bool:
    attrs = node.attributes
    if "hidden" in attrs or attrs.get("aria-hidden") == "true" or attrs.get("role") == "navigation":
        return True
    classes = attrs.get("class")
    return bool(classes) and not _CHROME_CLASSES.isdisjoint(classes.split())


class _Writer:
    """Walks the tree without recursion (hostile pages nest thousands deep)."""

    def __init__(self) -> None:
        self.blocks: list[str] = []
        self.line: list[str] = []
        self.lines: list[str] = []

    def render(self, root: LexborNode) -> str:
        stack: list[tuple[LexborNode, bool]] = [(root, False)]
        while stack:
            node, leaving = stack.pop()
            tag = node.tag
            if leaving:
                self._close(tag)
                continue
            if tag == "-text":
                self.line.append(node.text_content or "")
                continue
            if tag in _DROP or (node.is_element_node and _hidden(node)):
                continue
            if tag in _HEADINGS:
                self._hard()
                heading = _collapse(_visible_text(node))
                if heading:
                    self.blocks.append("#" * _HEADINGS[tag] + " " + heading)
                continue
            if tag == "pre":
                self._pre(_pre_text(node))
                continue
            self._open(tag)
            stack.append((node, True))
            children: list[LexborNode] = []
            child = node.child
            while child is not None:
                children.append(child)
                child = child.next
            stack.extend((c, False) for c in reversed(children))
        self._hard()
        return "\n\n".join(self.blocks)

    def _open(self, tag: str) -> None:
        if tag in _HARD:
            self._hard()
        elif tag in _SOFT:
            self._soft()
            if tag == "li":
                self.line.append("- ")
        elif tag in ("td", "th") and _collapse("".join(self.line)):
            self.line.append(" | ")

    def _close(self, tag: str) -> None:
        if tag in _HARD:
            self._hard()
        elif tag in _SOFT:
            self._soft()
        elif tag in ("td", "th"):
            self.line.append(" ")

    def _soft(self) -> None:
        text = _collapse("".join(self.line))
        if text and text != "-":
            self.lines.append(text)
        self.line = []

    def _hard(self) -> None:
        self._soft()
        if self.lines:
            self.blocks.append("\n".join(self.lines))
            self.lines = []

    def _pre(self, code: str) -> None:
        self._hard()
        code = code.replace("\r\n", "\n").strip("\n")
        if code.strip():
            longest = max((len(run) for run in re.findall(r"`+", code)), default=0)
            fence = "`" * max(3, longest + 1)
            self.blocks.append(f"{fence}\n{code}\n{fence}")
