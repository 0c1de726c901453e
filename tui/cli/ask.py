"""``parley ask``: one question, answered from your documents, for people and scripts.

Plain output streams the answer to stdout as it arrives, then the cited sources, one line
each (``[1] notes/a.pdf p.3 L10-20``). ``--json`` prints one document at the end;
``--stream-json`` prints one JSON event per line as it happens (``delta``, ``tool_call``,
``tool_result``, ``sources``, ``usage``, ``done``). With tools on, each tool call gets one
line on stderr (``tool parley.search {...} → ok, 1.2 kB in 140 ms``) and ``--json`` lists
them under ``tool_runs``. Warnings (a budget about to be passed, a marker that names no
source) go to stderr. A failed call prints what arrived, then the error and its hint, and
exits 1; the question and the partial answer are stored either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from typing import TYPE_CHECKING, Any

import click

from tui.cli import tools as tools_cli
from tui.cli.common import (
    app_context,
    info,
    json_option,
    names_of,
    open_engine,
    parse_pairs,
    print_json,
    run,
)

if TYPE_CHECKING:
    from engine.types import Citation, Done, Sources

CITATION_FIELDS = ("marker", "path", "page", "line_start", "line_end", "document_id",
                   "chunk_id", "score", "snippet")
USAGE_FIELDS = ("prompt_tokens", "completion_tokens", "embedding_tokens", "cost", "estimated")


def citation_json(citation: Citation) -> dict[str, Any]:
    """A citation as ``--json`` documents it."""
    return {name: getattr(citation, name) for name in CITATION_FIELDS}


def answer_json(answer: str, sources: Sources | None, done: Done,
                tool_runs: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The one ``--json`` document of a turn."""
    return {"session_id": done.session_id, "message_id": done.message_id,
            "status": done.status, "model": done.model, "answer": answer,
            "citations": [citation_json(c) for c in (sources.citations if sources else ())],
            "tool_runs": tool_runs or [],
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


class _Output:
    """Writes a turn's events in the chosen format, keeping what the end needs."""

    def __init__(self, mode: str) -> None:
        self.mode = mode  # "plain" | "json" | "stream-json"
        self.parts: list[str] = []
        self.sources: Sources | None = None
        self.done: Done | None = None
        self.tool_runs: list[dict[str, Any]] = []
        self.slots: dict[tuple[int, str], int] = {}

    def event(self, event: object) -> None:
        from engine.types import (
            BudgetWarning,
            Delta,
            Done,
            NothingFound,
            Searched,
            Sources,
            ToolCallFinished,
            ToolCallStarted,
            ToolNotice,
        )

        if isinstance(event, Searched):
            if event.first:  # say once, where the session starts, what it searches
                from engine.session_setup.scope import scope_notes

                for note in scope_notes(event.scope):
                    info(f"parley: {note}")
        elif isinstance(event, NothingFound):
            from engine.session_setup.scope import nothing_found_note

            info(f"parley: {nothing_found_note(event.scope)}")
        elif isinstance(event, BudgetWarning):
            info(f"parley: warning: {event.message}")
        elif isinstance(event, ToolNotice):
            info(f"parley: warning: {event.message}")
        elif isinstance(event, ToolCallStarted):
            # A round's calls run together and may end in any order: --json keeps the
            # model's order (a slot per call, filled when it ends).
            self.slots[(event.round, event.call_id)] = len(self.tool_runs)
            self.tool_runs.append(tools_cli.started_json(event))
            if self.mode == "stream-json":
                _line(tools_cli.started_json(event))
        elif isinstance(event, ToolCallFinished):
            slot = self.slots.pop((event.round, event.call_id), None)
            if slot is None:
                self.tool_runs.append(tools_cli.finished_json(event))
            else:
                self.tool_runs[slot] = tools_cli.finished_json(event)
            if self.mode == "stream-json":
                _line({"type": "tool_result", **tools_cli.finished_json(event)})
            else:
                self.end_line()
                info(tools_cli.finished_line(event))
            if event.decision == "no_terminal":
                info(f"parley: warning: {event.server}.{event.tool} needs approval and there "
                     "is no terminal to ask on; allow it with tools.allow or --approve auto")
        elif isinstance(event, Delta):
            self.parts.append(event.text)
            if self.mode == "stream-json":
                _line({"type": "delta", "text": event.text})
            elif self.mode == "plain":
                sys.stdout.write(event.text)
                sys.stdout.flush()
        elif isinstance(event, Sources):
            self.sources = event
            if self.mode == "stream-json":
                _line({"type": "sources",
                       "citations": [citation_json(c) for c in event.citations],
                       "unknown_markers": list(event.unknown_markers)})
        elif isinstance(event, Done):
            self.done = event
            if self.mode == "stream-json":
                _line({"type": "usage", **{n: getattr(event.usage, n) for n in USAGE_FIELDS}})
                _line({"type": "done", "session_id": event.session_id,
                       "message_id": event.message_id, "status": event.status,
                       "model": event.model, "error": event.error})

    def end_line(self) -> None:
        """End a streamed plain answer with a newline."""
        if self.mode == "plain" and self.parts and not self.parts[-1].endswith("\n"):
            sys.stdout.write("\n")
            sys.stdout.flush()

    def finish(self) -> None:
        """What comes after the answer: the JSON document, or the cited sources."""
        from engine.chat.citations import location

        if self.mode == "json" and self.done is not None:
            print_json(answer_json("".join(self.parts), self.sources, self.done,
                                   self.tool_runs))
        elif self.mode == "plain":
            self.end_line()
            if self.sources is not None and self.sources.citations:
                click.echo()
                for c in self.sources.citations:
                    click.echo(f"[{c.marker}] "
                               f"{location(c.path, c.page, c.line_start, c.line_end)}")
        if self.sources is not None and self.sources.unknown_markers:
            listed = ", ".join(f"[{n}]" for n in self.sources.unknown_markers)
            info(f"parley: warning: the answer cites {listed}, which names no source")


@click.command("ask")
@click.argument("question", nargs=-1)
@click.option("--new", is_flag=True, help="Start a new session (default: continue the latest).")
@click.option("--session", "session_id", type=int, metavar="ID",
              help="Continue this session.")
@click.option("--collection", "collections", multiple=True, metavar="NAME",
              help="Search this collection (repeatable; default: the session's, else all "
                   "of your collections).")
@click.option("-a", "--attach", "attach", multiple=True, metavar="FILE",
              help="Send this file with the question as a source the answer can cite "
                   "(repeatable; - reads stdin).")
@click.option("--persona", metavar="NAME",
              help="Start a new session from this persona (see 'parley personas list').")
@click.option("--param", "params", multiple=True, metavar="K=V",
              help="temperature, max_tokens or top_k for this question (a new session "
                   "keeps them).")
@click.option("--no-rag", is_flag=True, help="Answer without searching your documents.")
@click.option("--model", metavar="NAME", help="Model for this question (default: chat.model).")
@click.option("--provider", metavar="NAME",
              help="Provider under 'providers' (default: chat.provider; 'extractive' for none).")
@click.option("--system", "system_prompt", metavar="TEXT",
              help="System prompt for this question (a new session keeps it).")
@click.option("--regenerate", is_flag=True,
              help="Answer the session's last question again; the old answer stays as "
                   "another branch.")
@click.option("--edit", is_flag=True,
              help="QUESTION replaces the session's last question, as a new branch.")
@click.option("--tools/--no-tools", "use_tools", default=None,
              help="Let the model call tools for this question (default: tools.enabled).")
@click.option("--approve", type=click.Choice(["ask", "auto", "never"]),
              help="Tools not in tools.allow: ask on the terminal, run (auto) or refuse "
                   "(never). Default: tools.approval.")
@click.option("--stream-json", is_flag=True,
              help="Print one JSON event per line: delta, tool_call, tool_result, sources, "
                   "usage, done.")
@tools_cli.trust_option
@json_option
@run
async def ask(question: tuple[str, ...], new: bool, session_id: int | None,
              collections: tuple[str, ...], attach: tuple[str, ...], persona: str | None,
              params: tuple[str, ...], no_rag: bool, model: str | None,
              provider: str | None, system_prompt: str | None, regenerate: bool, edit: bool,
              use_tools: bool | None, approve: str | None, stream_json: bool,
              trust_servers: bool, as_json: bool) -> None:
    """Ask QUESTION (or read it from stdin) and stream a cited answer.

    --regenerate and --edit work on the last question of --session ID (default: the
    latest session); 'parley sessions show' lists the branches they leave.
    """
    from engine.errors import ParleyError, UsageError

    if as_json and stream_json:
        raise UsageError("--json and --stream-json cannot be combined",
                         "--json prints one document, --stream-json one event per line")
    if regenerate or edit:
        _check_rework(regenerate, edit, new, question, collections, system_prompt)
        if attach or persona or params:
            raise UsageError("--regenerate and --edit keep the question's attachments and "
                             "the session's settings",
                             "change the settings with: parley sessions set ID")
    if "-" in attach and not question:
        raise UsageError("-a - reads the attachment from stdin, so the question must be an "
                         "argument", "parley ask -a - \"QUESTION\" < FILE")
    attachments = _attachments(attach)
    quiet_stdin = sys.stdin is None or sys.stdin.isatty() or "-" in attach
    # a persona's first message stands in for a question not given
    text = "" if regenerate or (persona and not question and quiet_stdin) \
        else read_question(question)
    out = _Output("json" if as_json else "stream-json" if stream_json else "plain")
    failure: ParleyError | None = None
    async with open_engine() as engine:
        rag = False if no_rag else None
        tools_cli.setup_trust(engine, trust_servers)
        tooling = {"tools": use_tools, "approval": approve,
                   "approver": tools_cli.terminal_approver()}
        if regenerate or edit:
            turn = (engine.chat.regenerate(session_id, model=model, provider=provider, rag=rag,
                                           **tooling)
                    if regenerate else
                    engine.chat.edit_last(session_id, text, model=model, provider=provider,
                                          rag=rag, **tooling))
        else:
            turn = engine.chat.ask(text, session_id=session_id, new=new,
                                   collections=names_of(collections) or None, rag=rag,
                                   model=model, provider=provider, system_prompt=system_prompt,
                                   attachments=attachments, persona=persona,
                                   params=parse_pairs(params), **tooling)
        try:
            # aclosing: a closed pipe on stdout still stores what arrived, at once
            async with contextlib.aclosing(turn) as events:
                async for event in events:
                    out.event(event)
        except asyncio.CancelledError:  # Ctrl-C: the engine stored what arrived
            out.end_line()
            raise
        except ParleyError as exc:
            if out.done is None:
                out.end_line()
                raise
            failure = exc  # the answer is stored: show it first, then the error
    out.finish()
    if failure is not None:
        raise failure


def _attachments(paths: tuple[str, ...]) -> list[Any]:
    """The files given with -a, read now: a bad one stops the command before anything is
    stored."""
    from engine.session_setup.attachments import load_attachment, text_attachment

    if not paths:
        return []
    limit = int(app_context().settings().retrieval.max_file_mb * 1_048_576)
    out = []
    for path in paths:
        if path == "-":
            data = sys.stdin.buffer.read() if sys.stdin is not None else b""
            out.append(text_attachment(data.decode("utf-8", errors="replace"), "stdin"))
        else:
            out.append(load_attachment(path, max_bytes=limit))
    return out


def _check_rework(regenerate: bool, edit: bool, new: bool, question: tuple[str, ...],
                  collections: tuple[str, ...], system_prompt: str | None) -> None:
    """--regenerate and --edit redo the last turn of a session: refuse what cannot apply."""
    from engine.errors import UsageError

    flag = "--regenerate" if regenerate else "--edit"
    if regenerate and edit:
        raise UsageError("--regenerate and --edit cannot be combined",
                         "--edit asks a new version of the question, --regenerate the same one")
    if new:
        raise UsageError(f"{flag} works on an existing session, not with --new",
                         "choose the session with --session ID")
    if regenerate and question:
        raise UsageError("--regenerate asks the last question again and takes no question",
                         "to change the question, use --edit \"NEW QUESTION\"")
    if collections or system_prompt is not None:
        raise UsageError(f"{flag} uses the session's collections and system prompt",
                         "change them in the session, or start one with --new")


COMMANDS = [ask]
