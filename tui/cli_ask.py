"""``parley ask``: one question, answered from your documents, for people and scripts.

Plain output streams the answer to stdout as it arrives, then the cited sources, one line
each (``[1] notes/a.pdf p.3 L10-20``). ``--json`` prints one document at the end;
``--stream-json`` prints one JSON event per line as it happens (``delta``, ``sources``,
``usage``, ``done``). Warnings (a budget about to be passed, a marker that names no
source) go to stderr. A failed call prints what arrived, then the error and its hint, and
exits 1; the question and the partial answer are stored either way.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

import click

from tui.cli_common import info, json_option, open_engine, print_json, run

if TYPE_CHECKING:
    from engine.types import Citation, Done, Sources

CITATION_FIELDS = ("marker", "path", "page", "line_start", "line_end", "document_id",
                   "chunk_id", "score", "snippet")
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "embedding_tokens", "cost", "estimated")


def citation_json(citation: Citation) -> dict[str, Any]:
    """A citation as ``--json`` documents it."""
    return {name: getattr(citation, name) for name in CITATION_FIELDS}


def answer_json(answer: str, sources: Sources | None, done: Done) -> dict[str, Any]:
    """The one ``--json`` document of a turn."""
    return {"session_id": done.session_id, "message_id": done.message_id,
            "status": done.status, "model": done.model, "answer": answer,
            "citations": [citation_json(c) for c in (sources.citations if sources else ())],
            "usage": {name: getattr(done.usage, name) for name in USAGE_FIELDS}}


def _line(event: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(event, ensure_ascii=False, separators=(",", ":")) + "\n")
    sys.stdout.flush()


def read_question(words: tuple[str, ...]) -> str:
    """The question from the arguments, or from stdin when there are none (or ``-``)."""
    from engine.errors import UsageError

    question = " ".join(words)
    if question.strip() in ("", "-"):
        if sys.stdin is None or sys.stdin.isatty():
            raise UsageError("no question given", "parley ask \"QUESTION\", or pipe it on stdin")
        question = sys.stdin.read()
    if not question.strip():
        raise UsageError("the question is empty", "parley ask \"QUESTION\"")
    return question


@click.command("ask")
@click.argument("question", nargs=-1)
@click.option("--new", is_flag=True, help="Start a new session (default: continue the latest).")
@click.option("--session", "session_id", type=int, metavar="ID",
              help="Continue this session.")
@click.option("--collection", "collections", multiple=True, metavar="NAME",
              help="Search this collection (repeatable; default: the session's, else "
                   "retrieval.default_collection).")
@click.option("--no-rag", is_flag=True, help="Answer without searching your documents.")
@click.option("--model", metavar="NAME", help="Model for this question (default: chat.model).")
@click.option("--provider", metavar="NAME",
              help="Provider under 'providers' (default: chat.provider; 'extractive' for none).")
@click.option("--system", "system_prompt", metavar="TEXT",
              help="System prompt for this question (a new session keeps it).")
@click.option("--stream-json", is_flag=True,
              help="Print one JSON event per line: delta, sources, usage, done.")
@json_option
@run
async def ask(question: tuple[str, ...], new: bool, session_id: int | None,
              collections: tuple[str, ...], no_rag: bool, model: str | None,
              provider: str | None, system_prompt: str | None, stream_json: bool,
              as_json: bool) -> None:
    """Ask QUESTION (or read it from stdin) and stream a cited answer."""
    from engine.errors import ParleyError, UsageError
    from engine.types import BudgetWarning, Delta, Done, Sources

    if as_json and stream_json:
        raise UsageError("--json and --stream-json cannot be combined",
                         "--json prints one document, --stream-json one event per line")
    text = read_question(question)
    parts: list[str] = []
    sources: Sources | None = None
    done: Done | None = None
    failure: ParleyError | None = None
    async with open_engine() as engine:
        try:
            async for event in engine.chat.ask(
                    text, session_id=session_id, new=new, collections=collections or None,
                    rag=False if no_rag else None, model=model, provider=provider,
                    system_prompt=system_prompt):
                if isinstance(event, BudgetWarning):
                    info(f"parley: warning: {event.message}")
                elif isinstance(event, Delta):
                    parts.append(event.text)
                    if stream_json:
                        _line({"type": "delta", "text": event.text})
                    elif not as_json:
                        sys.stdout.write(event.text)
                        sys.stdout.flush()
                elif isinstance(event, Sources):
                    sources = event
                    if stream_json:
                        _line({"type": "sources",
                               "citations": [citation_json(c) for c in event.citations],
                               "unknown_markers": list(event.unknown_markers)})
                elif isinstance(event, Done):
                    done = event
                    if stream_json:
                        _line({"type": "usage", **{name: getattr(event.usage, name)
                                                   for name in USAGE_FIELDS}})
                        _line({"type": "done", "session_id": event.session_id,
                               "message_id": event.message_id, "status": event.status,
                               "model": event.model, "error": event.error})
        except asyncio.CancelledError:  # Ctrl-C: the engine stored what arrived
            _end_plain(parts, as_json or stream_json)
            raise
        except ParleyError as exc:
            if done is None:
                _end_plain(parts, as_json or stream_json)
                raise
            failure = exc  # the answer is stored: report it first, then the error
    if as_json and done is not None:
        print_json(answer_json("".join(parts), sources, done))
    elif not stream_json:
        _end_plain(parts, False)
        if sources is not None and sources.citations:
            from engine.citations import location

            click.echo()
            for c in sources.citations:
                click.echo(f"[{c.marker}] {location(c.path, c.page, c.line_start, c.line_end)}")
    if sources is not None and sources.unknown_markers:
        listed = ", ".join(f"[{n}]" for n in sources.unknown_markers)
        info(f"parley: warning: the answer cites {listed}, which names no source")
    if failure is not None:
        raise failure


def _end_plain(parts: list[str], machine: bool) -> None:
    """End the streamed answer with a newline (plain output only)."""
    if not machine and parts and not parts[-1].endswith("\n"):
        sys.stdout.write("\n")
        sys.stdout.flush()


COMMANDS = [ask]
