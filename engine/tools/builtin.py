"""``parley.search``: Parley's own hybrid search as a read-only tool.

The model may search the library itself, several times per question. Each hit is numbered
after the sources already in the prompt (a chunk found twice keeps its first number), so
the answer cites it with ``[n]`` exactly like a retrieved source, and it is stored as a
citation with file, page and lines.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from engine.chat.citations import NumberedSource
from engine.chat.prompt import source_block
from engine.tools.servers import Tool, ToolOutput

if TYPE_CHECKING:
    from engine.facade import Engine
    from engine.types import SearchHit

MAX_K = 20
DESCRIPTION = ("Search the user's own documents (hybrid keyword and semantic search). "
               "Returns numbered passages with file, page and lines; cite them by number in "
               "square brackets like [3]. Search again with other words when a search finds "
               "nothing useful.")
SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "query": {"type": "string", "description": "What to look for, in a few words."},
        "k": {"type": "integer", "minimum": 1, "maximum": MAX_K,
              "description": "How many passages to return (default 6)."},
    },
    "required": ["query"],
}


@dataclass
class SourceBook:
    """The numbered sources of one turn: the prompt's, then those the tool found."""

    sources: list[NumberedSource] = field(default_factory=list)

    def number(self, hit: SearchHit) -> int:
        for source in self.sources:
            if source.hit.chunk_id == hit.chunk_id:
                return source.marker
        marker = len(self.sources) + 1
        self.sources.append(NumberedSource(marker, hit))
        return marker

    def render(self, query: str, hits: Sequence[SearchHit]) -> str:
        if not hits:
            return f"No passages found for {query!r}. Try other words."
        blocks = [source_block(self.number(hit), hit) for hit in hits]
        return ("Passages found (cite them by their numbers in square brackets):\n\n"
                + "\n\n".join(blocks))


class ParleyServer:
    """The built-in server ``parley`` with its one tool, ``search``."""

    name = "parley"
    kind = "builtin"
    state = "ready"
    error: str | None = None
    start_ms: float | None = 0.0
    log_path = None

    def __init__(self, engine: Engine) -> None:
        self._engine = engine

    async def tools(self) -> list[Tool]:
        return [Tool("parley", "search", DESCRIPTION, SCHEMA, read_only=True)]

    async def call(self, tool: str, arguments: dict[str, Any], timeout: float,
                   context: Any = None) -> ToolOutput:
        if tool != "search":
            return ToolOutput(f"no tool named '{tool}' on server 'parley'", "error")
        query = arguments.get("query")
        if not isinstance(query, str) or not query.strip():
            return ToolOutput("'query' must be a non-empty string", "error")
        k = arguments.get("k", self._engine.settings.retrieval.top_k)
        if not isinstance(k, int) or isinstance(k, bool):
            return ToolOutput("'k' must be an integer", "error")
        collections = getattr(context, "collections", None) or None
        hits = await self._engine.retrieval.search(query.strip(), k=max(1, min(k, MAX_K)),
                                                   collections=collections)
        return ToolOutput("", "ok", tuple(hits))

    async def aclose(self) -> None:
        return None
