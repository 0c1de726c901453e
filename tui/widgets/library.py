"""The library screen's lists: the collections (all of them first) and the documents table.

The table shows each document's status mark, path, chunks, size, when it was indexed and
its error; its title counts the documents and those with errors, and an empty library says
what to do instead of showing an empty table.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.widgets import DataTable, Label, Static
from textual.widgets.option_list import Option

from tui.widgets.format import count, one_line, short_path, size_text, when

if TYPE_CHECKING:
    from engine.types import CollectionInfo, DocumentInfo

ALL = "*"  # the option id of "All collections"
NO_DOCS = "No documents yet: press i to ingest a folder."
STATUS_MARK = {"indexed": ("✔", "$text-success"), "error": ("✖", "$text-error")}


def collection_prompt(info: CollectionInfo) -> Content:
    """Name, then document and chunk counts and the embedder."""
    return Content.assemble(
        (info.name, "bold"), "\n",
        (f"{info.document_count:,} docs · {count(info.chunk_count)} chunks · {info.embedder}",
         "$text-muted"), "\n")


def collection_options(collections: Sequence[CollectionInfo]) -> list[Option]:
    """"All collections" (id ``ALL``), then one option per collection (id ``c:NAME``)."""
    total_docs = sum(c.document_count for c in collections)
    options = [Option(Content.assemble(("All collections", "bold"), "\n",
                                       (f"{total_docs:,} docs", "$text-muted"), "\n"), id=ALL)]
    options += [Option(collection_prompt(c), id=f"c:{c.name}") for c in collections]
    return options


class DocumentsPane(Vertical):
    """The documents of one collection (or of all), in a table."""

    def compose(self) -> ComposeResult:
        yield Label("Documents", classes="panel-title", id="documents-title")
        yield DataTable(id="documents", cursor_type="row", zebra_stripes=True)
        yield Static(NO_DOCS, classes="empty-state", id="documents-empty")

    def on_mount(self) -> None:
        table = self.query_one("#documents", DataTable)
        table.add_column("", key="status", width=1)
        table.add_column("Path", key="path")
        table.add_column("Chunks", key="chunks")
        table.add_column("Size", key="size")
        table.add_column("Indexed", key="indexed")
        table.add_column("Error", key="error")

    def show(self, documents: Sequence[DocumentInfo], collection: str | None) -> None:
        """List ``documents`` (of ``collection``; None: all), keeping the cursor's row."""
        table = self.query_one("#documents", DataTable)
        keep = table.cursor_row
        table.clear()
        for doc in documents:
            mark, style = STATUS_MARK.get(doc.status, ("•", "$text-warning"))
            table.add_row(Content.styled(mark, style), short_path(doc.path, 70),
                          f"{doc.chunk_count:,}", size_text(doc.size),
                          when(doc.indexed_at) if doc.indexed_at else "–",
                          Content.styled(one_line(doc.error or "", 40), "$text-error"),
                          key=str(doc.id))
        if documents:
            table.move_cursor(row=min(keep, len(documents) - 1))
        errors = sum(1 for d in documents if d.status == "error")
        where = f" in {collection}" if collection else ""
        title = f"Documents{where}  ({len(documents):,}"
        title += f", {errors:,} with errors)" if errors else ")"
        self.query_one("#documents-title", Label).update(title)
        table.display = bool(documents)
        self.query_one("#documents-empty").display = not documents
