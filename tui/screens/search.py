"""The search screen: offline hybrid search of the library, with filters and highlights.

No model is needed: keyword (BM25) and vector rankings are fused by the engine. Mark
results with Space and press ``a`` to take them into the chat as quoted context, or open
one at its line or page with ``o``. Ctrl+R shows why each hit ranked where it did.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence

from textual import on
from textual.binding import Binding
from textual.containers import Horizontal
from textual.content import Content
from textual.widget import Widget
from textual.widgets import Input, OptionList, Select, Static
from textual.widgets.option_list import Option

from engine.types import SearchHit
from tui.screens.base import ParleyScreen, engine_task
from tui.widgets.format import highlight, location, one_line

ALL = "__all__"
HINT = ("Type a query and press Enter. Search runs offline on keywords and meaning; "
        "no model needed.")
NO_DOCS = "No documents yet: press F4 to open the Library and ingest a folder."
QUOTE_CHARS = 800
clock = time.perf_counter  # module-level so tests can fix the timing shown


def hit_prompt(hit: SearchHit, query: str, *, marked: bool, explain: bool) -> Content:
    """The header line (mark, rank, location, collection, score) and the passage."""
    where = location(hit.path, hit.page, hit.line_start, hit.line_end)
    parts: list[tuple[str, str] | str | Content] = [
        ("✔ " if marked else "  ", "bold $text-success"), (f"{hit.rank:>2}. ", "$text-muted"),
        (where, "bold")]
    if hit.heading:
        parts.append((f"  › {one_line(hit.heading, 40)}", "$text-muted"))
    if hit.collection:
        parts.append((f"  [{hit.collection}]", "$text-secondary"))
    if explain:
        kw = hit.keyword_rank if hit.keyword_rank is not None else "–"
        vec = hit.vector_rank if hit.vector_rank is not None else "–"
        parts.append((f"  score {hit.score:.4f}  keyword #{kw}  vector #{vec}", "$text-muted"))
    passage = one_line(hit.text, 360)
    return Content.assemble(*parts, "\n", highlight(passage, query), "\n")


def quote(hits: Sequence[SearchHit]) -> str:
    """Hits as Markdown quotes to put before a question."""
    blocks = []
    for hit in hits:
        where = location(hit.path, hit.page, hit.line_start, hit.line_end)
        text = hit.text.strip()
        if len(text) > QUOTE_CHARS:
            text = text[:QUOTE_CHARS].rsplit(" ", 1)[0] + " …"
        body = "\n".join(f"> {line}" if line else ">" for line in text.splitlines())
        blocks.append(f"> **{where}**\n>\n{body}")
    return "Using these passages:\n\n" + "\n\n".join(blocks) + "\n\n"


class SearchResults(OptionList):
    """The hits of the last search."""

    BINDINGS = [
        Binding("space", "screen.toggle_mark", "Mark / unmark", id="results.toggle_mark"),
        Binding("a", "screen.ask_with_marked", "Ask about marked", id="results.ask"),
        Binding("o", "screen.open_hit", "Open source", id="results.open"),
        Binding("y", "screen.copy_hit", "Copy passage", id="results.copy"),
    ]


class SearchScreen(ParleyScreen):
    """Search the library without a model."""

    MODE = "search"
    AUTO_FOCUS = "#query"
    BINDINGS = [
        Binding("ctrl+f", "focus_query", "Query", id="search.focus_query"),
        Binding("ctrl+g", "ask_with_marked", "Ask about marked", id="search.ask"),
        Binding("ctrl+r", "toggle_explain", "Explain ranks", id="search.toggle_explain"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.hits: list[SearchHit] = []
        self.marked: set[int] = set()  # chunk ids
        self.query_text = ""
        self.explain = False

    def compose_body(self) -> Iterable[Widget]:
        with Horizontal(id="search-bar"):
            yield Input(placeholder="Search your documents…", id="query")
            yield Input(placeholder="path filter, e.g. *.md", id="path-glob")
            yield Select([], prompt="All collections", id="collection", allow_blank=True)
        yield Static(HINT, id="search-status")
        yield SearchResults(id="results")

    def on_screen_resume(self) -> None:
        self.load_collections()

    @engine_task("collections")
    async def load_collections(self) -> None:
        """Fill the collection filter."""
        engine = await self.engine()
        collections = await engine.library.collections()
        select = self.query_one("#collection", Select)
        current = select.value
        select.set_options((f"{c.name}  ({c.document_count} docs)", c.name)
                           for c in collections)
        if current in {c.name for c in collections}:
            select.value = current
        if not collections and not self.hits:
            self.query_one("#search-status", Static).update(NO_DOCS)

    @on(Input.Submitted)
    def _submitted(self) -> None:
        query = self.query_one("#query", Input).value.strip()
        if query:
            self.run_search(query)

    @on(Select.Changed, "#collection")
    def _collection_changed(self) -> None:
        if self.query_text:
            self.run_search(self.query_text)

    @engine_task("search")
    async def run_search(self, query: str) -> None:
        """Search and list the hits."""
        engine = await self.engine()
        collection = self.query_one("#collection", Select).value
        glob = self.query_one("#path-glob", Input).value.strip() or None
        started = clock()
        hits = await engine.retrieval.search(
            query, k=max(20, engine.settings.retrieval.top_k),
            collections=[collection] if isinstance(collection, str) else None,
            path_glob=glob, explain=self.explain)
        elapsed = (clock() - started) * 1000
        self.query_text = query
        self.hits = hits
        self.marked &= {h.chunk_id for h in hits}
        self._render_hits()
        status = self.query_one("#search-status", Static)
        if hits:
            status.update(f"{len(hits)} results in {elapsed:.0f} ms. Space marks, "
                          "a asks about the marked ones, o opens.")
            self.query_one(SearchResults).focus()
        else:
            status.update(f"Nothing found for “{query}”. Try other words or clear the filters.")

    def _render_hits(self, keep: int | None = None) -> None:
        results = self.query_one(SearchResults)
        keep = results.highlighted if keep is None else keep
        results.set_options(Option(hit_prompt(h, self.query_text, marked=h.chunk_id in
                                              self.marked, explain=self.explain),
                                   id=str(h.chunk_id)) for h in self.hits)
        if self.hits:
            results.highlighted = min(keep or 0, len(self.hits) - 1)

    def _current(self) -> SearchHit | None:
        index = self.query_one(SearchResults).highlighted
        return self.hits[index] if index is not None and index < len(self.hits) else None

    def action_focus_query(self) -> None:
        self.query_one("#query", Input).focus()

    def action_toggle_mark(self) -> None:
        hit = self._current()
        if hit is not None:
            self.marked ^= {hit.chunk_id}
            self._render_hits()

    def action_toggle_explain(self) -> None:
        self.explain = not self.explain
        if self.query_text:
            self.run_search(self.query_text)

    def action_open_hit(self) -> None:
        hit = self._current()
        if hit is None:
            return
        try:
            self.parley.opener.open(self.app, hit.path, line=hit.line_start, page=hit.page)
        except Exception as exc:
            self.parley.report(exc)

    def action_copy_hit(self) -> None:
        hit = self._current()
        if hit is not None:
            self.app.copy_to_clipboard(hit.text)
            self.notify("Copied the passage", timeout=2)

    async def action_ask_with_marked(self) -> None:
        chosen = [h for h in self.hits if h.chunk_id in self.marked]
        if not chosen and (hit := self._current()) is not None:
            chosen = [hit]
        if not chosen:
            self.notify("Search first, then mark results with Space", severity="warning")
            return
        await self.app.switch_mode("chat")
        from tui.screens.chat import ChatScreen

        screen = self.app.screen
        if isinstance(screen, ChatScreen):
            screen.insert_context(quote(chosen))
        self.marked.clear()
        self._render_hits()

    @on(OptionList.OptionSelected, "#results")
    def _selected(self) -> None:
        self.action_toggle_mark()
