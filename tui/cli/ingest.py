"""``parley ingest``, ``parley docs``, ``parley collections`` and ``parley reindex``.

Progress goes to stderr as a bar when stderr is a terminal, and nowhere when it is piped;
the summary and the failed files are messages (stderr); ``--json`` prints the result on
stdout. A run with failed files still exits 0: failures are reported, recorded (``parley
docs errors``) and counted in the result, and the run goes on past them.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

import click

from tui.cli.common import EXIT_USAGE, fail, info, json_option, open_engine, print_json, run

if TYPE_CHECKING:
    from engine.types import DocumentInfo, IngestResult

SHOWN_ERRORS = 10
collection_option = click.option("--collection", "-c", metavar="NAME",
                                  help="Collection (default: retrieval.default_collection).")


class _Progress:
    """A progress bar on a terminal's stderr; nothing when stderr is not one."""

    def __init__(self, label: str) -> None:
        self.enabled = sys.stderr.isatty()
        self.label = label
        self.bar: Any = None
        self.done = 0

    def update(self, done: int, total: int, item: str | None = None) -> None:
        if not self.enabled:
            return
        if self.bar is None:
            self.bar = click.progressbar(length=max(total, 1), file=sys.stderr, label=self.label,
                                         show_pos=True, item_show_func=_short)
            self.bar.__enter__()
        self.bar.length = max(total, 1)
        self.bar.update(max(done - self.done, 0), current_item=item)
        self.done = done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


def _short(path: str | None) -> str:
    if not path:
        return ""
    name = os.path.basename(path)
    return name if len(name) <= 40 else name[:39] + "…"


def _confirm(question: str, yes: bool) -> None:
    if yes:
        return
    if not sys.stdin.isatty():
        fail(f"{question} needs confirmation", "pass --yes to confirm in a script", EXIT_USAGE)
    if not click.confirm(question, err=True):
        raise click.Abort()


# -- parley ingest ---------------------------------------------------------------------------
@click.command("ingest")
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@collection_option
@click.option("--tag", "-t", "tags", multiple=True, metavar="TAG",
              help="Tag the documents (repeatable).")
@click.option("--include", multiple=True, metavar="GLOB",
              help="Only files matching (repeatable), e.g. '*.md' or 'docs/**/*.rst'.")
@click.option("--exclude", multiple=True, metavar="GLOB",
              help="Skip files and folders matching (repeatable), e.g. 'node_modules'.")
@click.option("--prune", is_flag=True, help="Remove documents under PATHS whose files are gone.")
@click.option("--hidden", is_flag=True, help="Also read hidden files and folders (.name).")
@click.option("--force", is_flag=True, help="Re-index unchanged files too (after changing "
                                            "chunk settings).")
@json_option
@run
async def ingest(paths: tuple[str, ...], collection: str | None, tags: tuple[str, ...],
                 include: tuple[str, ...], exclude: tuple[str, ...], prune: bool, hidden: bool,
                 force: bool, as_json: bool) -> None:
    """Index files and folders (recursively) for search.

    \b
    Text, Markdown, reStructuredText, AsciiDoc, HTML, PDF and source code. Unchanged files
    are skipped, changed ones replaced; a file that cannot be read is reported and the run
    goes on. Safe to interrupt: run the same command again to finish.
    """
    from engine.types import IngestResult

    bar = _Progress("indexing")
    started = time.monotonic()
    result: IngestResult | None = None
    if bar.enabled:
        info("scanning files...")
    try:
        async with open_engine() as engine:
            events = engine.library.ingest(list(paths), collection=collection, tags=tags,
                                           include=include, exclude=exclude, prune=prune,
                                           hidden=hidden, force=force)
            waiting = False
            async for event in events:
                if isinstance(event, IngestResult):
                    result = event
                elif event.outcome == "reconnecting":
                    info(f"parley: {event.error}")
                    waiting = True
                else:
                    if waiting:
                        info("parley: the database is back; going on")
                        waiting = False
                    bar.update(event.done, event.total, event.path)
    finally:
        bar.close()
    assert result is not None
    if as_json:
        print_json(result)
    _summary(result, time.monotonic() - started)


def _summary(result: IngestResult, seconds: float) -> None:
    info(f"indexed {result.indexed}, unchanged {result.skipped}, failed {result.failed}"
         + (f", pruned {result.pruned}" if result.pruned else "")
         + (f" ({result.linked} copies of indexed content, stored once)"
            if result.linked else "")
         + f" of {result.files_seen} files ({result.chunks} chunks) in {seconds:.1f} s")
    for path, reason in result.errors[:SHOWN_ERRORS]:
        info(f"  {path or '(run)'}: {reason}")
    if len(result.errors) > SHOWN_ERRORS:
        info(f"  ... and {len(result.errors) - SHOWN_ERRORS} more: parley docs errors")


# -- parley docs -----------------------------------------------------------------------------
@click.group("docs")
def docs_group() -> None:
    """Indexed documents: list, remove, errors, runs."""


@docs_group.command("list")
@collection_option
@click.option("--status", type=click.Choice(["indexed", "error"]), help="Only this status.")
@json_option
@run
async def docs_list(collection: str | None, status: str | None, as_json: bool) -> None:
    """List documents with their status and chunk count."""
    async with open_engine() as engine:
        docs = await engine.library.documents(collection, status=status)
    if as_json:
        print_json({"documents": docs})
        return
    if not docs:
        info("no documents (add some with: parley ingest PATH)")
        return
    for d in docs:
        click.echo(_doc_line(d))


def _doc_line(d: DocumentInfo) -> str:
    tags = f"  [{', '.join(d.tags)}]" if d.tags else ""
    state = "ok " if d.status == "indexed" else "ERR"
    line = f"{d.id:>6}  {state}  {d.chunk_count:>5}  {d.collection}  {d.path}{tags}"
    for collection, path in d.copies:  # identical content, stored once
        where = path if collection == d.collection else f"{collection}:{path}"
        line += f"\n{'':>6}  {'':3}  {'':>5}  = same content as {where}"
    return line


@docs_group.command("remove")
@click.argument("target", metavar="ID|PATH")
@collection_option
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@json_option
@run
async def docs_remove(target: str, collection: str | None, yes: bool, as_json: bool) -> None:
    """Delete documents (by id, file, or every document under a folder) from the index.

    Their chunks, vectors and keyword entries are deleted too. Files are not touched.
    """
    key: int | str = int(target) if target.isdigit() and not os.path.exists(target) else target
    async with open_engine() as engine:
        found = await engine.library.find_documents(key, collection=collection)
        chunks = sum(d.chunk_count for d in found)
        what = found[0].path if len(found) == 1 else f"{len(found)} documents"
        _confirm(f"Remove {what} ({chunks} chunks) from the index?", yes)
        removed = await engine.library.remove_documents(key, collection=collection)
    if as_json:
        print_json({"removed": removed})
    else:
        info(f"removed {len(removed)} document(s), {sum(d.chunk_count for d in removed)} chunks")


@docs_group.command("errors")
@collection_option
@click.option("--run", "run_id", type=int, metavar="ID", help="This run (default: the last).")
@json_option
@run
async def docs_errors(collection: str | None, run_id: int | None, as_json: bool) -> None:
    """Show the files the last ingestion run could not index, and why."""
    async with open_engine() as engine:
        runs = await engine.library.runs(collection, limit=1 if run_id is None else 1000)
    chosen = [r for r in runs if run_id is None or r.id == run_id][:1]
    if not chosen:
        fail("no ingestion run found" + (f" with id {run_id}" if run_id else ""),
             "see 'parley docs runs'")
        return
    r = chosen[0]
    if as_json:
        print_json({"run_id": r.id, "status": r.status,
                    "errors": [{"path": p, "reason": why} for p, why in r.errors]})
        return
    info(f"run {r.id} ({r.status}, {r.started_at:%Y-%m-%d %H:%M}): {r.failed} failed "
         f"of {r.files_seen} files")
    for path, reason in r.errors:
        click.echo(f"{path or '(run)'}\t{reason}")


@docs_group.command("runs")
@collection_option
@click.option("--limit", "-n", type=click.IntRange(1, 1000), default=10, show_default=True)
@json_option
@run
async def docs_runs(collection: str | None, limit: int, as_json: bool) -> None:
    """Recent ingestion runs with their totals."""
    async with open_engine() as engine:
        runs = await engine.library.runs(collection, limit=limit)
    if as_json:
        print_json({"runs": runs})
        return
    for r in runs:
        click.echo(f"{r.id:>5}  {r.started_at:%Y-%m-%d %H:%M}  {r.status:<11}  "
                   f"{r.collection or '-'}  indexed {r.indexed}, unchanged {r.skipped}, "
                   f"failed {r.failed}, pruned {r.pruned}  {' '.join(r.target)}")


# -- parley collections ----------------------------------------------------------------------
@click.group("collections")
def collections_group() -> None:
    """Collections of documents: list, create, rename, remove."""


@collections_group.command("list")
@json_option
@run
async def collections_list(as_json: bool) -> None:
    """List collections with their embedder and counts."""
    async with open_engine() as engine:
        items = await engine.library.collections()
    if as_json:
        print_json({"collections": items})
        return
    if not items:
        info("no collections yet (parley ingest PATH creates one)")
    for c in items:
        shared = "" if c.owner is None else f"\tshared by {c.owner} ({c.access})"
        click.echo(f"{c.name}\t{c.document_count} documents\t{c.chunk_count} chunks\t"
                   f"{c.embedder} ({c.dimension}){shared}")


@collections_group.command("create")
@click.argument("name")
@json_option
@run
async def collections_create(name: str, as_json: bool) -> None:
    """Create an empty collection for the configured embedder."""
    async with open_engine() as engine:
        created = await engine.library.create_collection(name)
    if as_json:
        print_json(created)
    else:
        info(f"created collection '{created.name}' ({created.embedder})")


@collections_group.command("rename")
@click.argument("name")
@click.argument("new_name")
@run
async def collections_rename(name: str, new_name: str) -> None:
    """Rename a collection."""
    async with open_engine() as engine:
        renamed = await engine.library.rename_collection(name, new_name)
    info(f"renamed '{name}' to '{renamed.name}'")


@collections_group.command("remove")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Do not ask for confirmation.")
@run
async def collections_remove(name: str, yes: bool) -> None:
    """Delete a collection with all its documents, chunks and vectors (files stay)."""
    async with open_engine() as engine:
        found = await engine.library.collection(name)
        _confirm(f"Remove collection '{found.name}' ({found.document_count} documents, "
                 f"{found.chunk_count} chunks)?", yes)
        await engine.library.delete_collection(name)
    info(f"removed collection '{found.name}'")


# -- parley reindex --------------------------------------------------------------------------
@click.command("reindex")
@click.option("--embed", is_flag=True, help="Re-embed every chunk with the configured embedder.")
@collection_option
@click.option("--force", is_flag=True, help="Re-embed even if the embedder did not change.")
@json_option
@run
async def reindex(embed: bool, collection: str | None, force: bool, as_json: bool) -> None:
    """Rebuild a collection's vectors with the configured embedder.

    \b
    Keyword search keeps working meanwhile and vector search keeps the old vectors until
    the new ones are complete. Safe to interrupt: run it again to resume.
    To re-read and re-chunk the files instead: parley ingest --force PATH.
    """
    from engine.types import ReindexResult

    if not embed:
        fail("say what to rebuild: --embed re-embeds the vectors",
             "to re-read and re-chunk files use: parley ingest --force PATH", EXIT_USAGE)
    bar = _Progress("embedding")
    result: ReindexResult | None = None
    try:
        async with open_engine() as engine:
            async for event in engine.library.reindex(collection, embed=True, force=force):
                if isinstance(event, ReindexResult):
                    result = event
                else:
                    bar.update(event.done, event.total)
    finally:
        bar.close()
    assert result is not None
    if as_json:
        print_json(result)
    elif result.status == "unchanged":
        info(f"collection '{result.collection}' already uses {result.embedder}; nothing to do "
             "(--force re-embeds anyway)")
    else:
        info(f"collection '{result.collection}' now uses {result.embedder} "
             f"({result.dimension} dimensions; {result.chunks} chunks embedded)")


COMMANDS = [ingest, docs_group, collections_group, reindex]
