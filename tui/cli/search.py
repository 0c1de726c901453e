"""``parley search``: hybrid search from the command line, one query or a batch.

One query prints the hits (``--json``: one document ``{"query", "hits": [...]}``). Batch
mode (``--queries FILE``, ``-`` for stdin) reads JSON Lines ``{"id": ..., "text": ...}``,
checks every line before searching, and prints one result line per query as it goes, all
in one process (the model loads once).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import click

from tui.cli.common import info, json_option, open_engine, print_json, run

if TYPE_CHECKING:
    from engine.types import SearchHit

BATCH = 32  # queries searched between two flushes of the output
HIT_FIELDS = ("rank", "score", "path", "document_id", "chunk_id", "page", "line_start",
              "line_end", "heading", "text")
EXPLAIN_FIELDS = ("keyword_rank", "vector_rank", "collection")


def hit_json(hit: SearchHit, explain: bool) -> dict[str, Any]:
    """A hit as the JSON output documents it (explain adds the two ranks and the collection)."""
    fields = HIT_FIELDS + (EXPLAIN_FIELDS if explain else ())
    out = {name: getattr(hit, name) for name in fields}
    if hit.owner is not None:  # a collection shared with you: whose document this is
        out["owner"] = hit.owner
    return out


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _snippet(text: str, width: int = 160) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= width else flat[:width - 1].rstrip() + "…"


def _location(hit: SearchHit) -> str:
    where = hit.path if hit.owner is None else f"{hit.owner}:{hit.path}"
    if hit.line_start is not None:
        where += f":{hit.line_start}"
        if hit.line_end is not None and hit.line_end != hit.line_start:
            where += f"-{hit.line_end}"
    if hit.page is not None:
        where += f" (page {hit.page})"
    return where


def print_hits(hits: Sequence[SearchHit], explain: bool) -> None:
    """Hits as text: location, heading, snippet; explain adds the ranks behind the score."""
    for hit in hits:
        click.echo(f"{hit.rank:>3}. {_location(hit)}")
        if hit.heading:
            click.echo(f"     § {hit.heading}")
        click.echo(f"     {_snippet(hit.text)}")
        if explain:
            kw = f"#{hit.keyword_rank}" if hit.keyword_rank else "-"
            vec = f"#{hit.vector_rank}" if hit.vector_rank else "-"
            click.echo(f"     keyword {kw}  vector {vec}  fused {hit.score:.5f}"
                       f"  [{hit.collection}]")


def read_queries(source: str) -> list[tuple[Any, str]]:
    """(id, text) of every JSON line in ``source`` (a path or ``-``), or a usage error that
    names the first bad line. Blank lines are skipped; a missing id is the line number."""
    from engine.errors import UsageError

    try:
        if source == "-":
            raw = sys.stdin.buffer.read()
        else:
            with open(source, "rb") as fh:
                raw = fh.read()
        content = raw.decode("utf-8-sig")
    except OSError as exc:
        raise UsageError(f"cannot read queries from {source}: {exc.strerror or exc}",
                         "give a JSON Lines file, or - for standard input") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{source} is not UTF-8 text (byte {exc.start})",
                         "write the queries file as UTF-8 JSON Lines") from None
    queries: list[tuple[Any, str]] = []
    for number, line in enumerate(content.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UsageError(f"{source}, line {number}: not valid JSON ({exc.msg})",
                             'each line must be an object like {"id": 1, "text": "..."}') \
                from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise UsageError(f'{source}, line {number}: no "text" string',
                             'each line must be an object like {"id": 1, "text": "..."}')
        queries.append((row.get("id", number), row["text"]))
    return queries


@click.command("search")
@click.argument("query", required=False)
@click.option("-k", "k", type=click.IntRange(1, 1000), default=None, metavar="N",
              help="Hits per query (default: retrieval.top_k).")
@click.option("--collection", "collections", multiple=True, metavar="NAME",
              help="Search only this collection (repeatable; default: all).")
@click.option("--tag", "tags", multiple=True, metavar="TAG",
              help="Only documents with this tag (repeatable: any of them).")
@click.option("--path", "paths", multiple=True, metavar="GLOB",
              help="Only documents whose path matches (e.g. '*.md', 'notes/*'; repeatable).")
@click.option("--type", "kinds", multiple=True, metavar="KIND",
              help="Only documents of this kind: text, markdown, rst, asciidoc, html, pdf, "
                   "code (repeatable).")
@click.option("--queries", "queries_file", metavar="FILE",
              help="Batch mode: JSON Lines of {\"id\", \"text\"} ('-' for stdin); prints one "
                   "result line per query.")
@click.option("--explain", is_flag=True,
              help="Show each hit's keyword rank, vector rank and fused score.")
@json_option
@run
async def search(query: str | None, k: int | None, collections: tuple[str, ...],
                 tags: tuple[str, ...], paths: tuple[str, ...], kinds: tuple[str, ...],
                 queries_file: str | None, explain: bool, as_json: bool) -> None:
    """Search your documents: keywords and meaning together (QUERY, or - to read stdin)."""
    from engine.errors import UsageError

    if (query is None) == (queries_file is None):
        raise UsageError("give either a QUERY or --queries FILE",
                         "e.g. parley search 'backup rotation' or parley search --queries q.jsonl")
    batch = read_queries(queries_file) if queries_file is not None else None
    if query == "-":
        query = sys.stdin.read()
    filters: dict[str, Any] = {"k": k, "collections": collections or None, "tags": tags,
                               "path_glob": paths, "kinds": kinds, "explain": explain}
    async with open_engine() as engine:
        if batch is None:
            assert query is not None
            hits = await engine.retrieval.search(query, **filters)
            if as_json:
                print_json({"query": query, "hits": [hit_json(h, explain) for h in hits]})
            elif hits:
                print_hits(hits, explain)
            else:
                info("no matches")
            return
        for first in range(0, len(batch), BATCH):
            part = batch[first:first + BATCH]
            found = await engine.retrieval.search_many([text for _, text in part], **filters)
            for (qid, text), hits in zip(part, found, strict=True):
                if as_json:
                    click.echo(_dumps({"id": qid, "query": text,
                                       "hits": [hit_json(h, explain) for h in hits]}))
                else:
                    click.echo(f"# {qid}: {_snippet(text, 100)}")
                    print_hits(hits, explain)
            sys.stdout.flush()


COMMANDS = [search]
