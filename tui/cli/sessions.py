"""``parley sessions``: the chat history as data (list, show, switch branch, rename, delete,
archive, export, import, search)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from tui.cli.common import (
    fail,
    info,
    json_option,
    names_of,
    open_engine,
    parse_pairs,
    print_json,
    run,
    to_jsonable,
)

if TYPE_CHECKING:
    from engine.types import Citation, Message, SessionDetail


@click.group("sessions")
def sessions_group() -> None:
    """Chat history: list, show, rename, delete, export, import, search."""


def _when(value: object) -> str:
    return f"{value:%Y-%m-%d %H:%M}"


@sessions_group.command("list")
@click.option("--all", "include_archived", is_flag=True, help="Include archived sessions.")
@click.option("--limit", type=click.IntRange(min=1), help="Show at most this many.")
@json_option
@run
async def list_sessions(include_archived: bool, limit: int | None, as_json: bool) -> None:
    """List sessions, most recently updated first."""
    async with open_engine() as engine:
        sessions = await engine.sessions.list(limit=limit, include_archived=include_archived)
    if as_json:
        print_json(sessions)
        return
    if not sessions:
        info("no sessions yet")
        return
    click.echo(f"{'ID':>5}  {'UPDATED':16}  {'MSGS':>5}  {'MODEL':20}  TITLE")
    for s in sessions:
        title = s.title + (" [archived]" if s.archived else "")
        click.echo(f"{s.id:>5}  {_when(s.updated_at):16}  {s.message_count:>5}  "
                   f"{(s.model or '-')[:20]:20}  {title}")


def _print_message(msg: Message) -> None:
    status = "" if msg.status == "complete" else f" ({msg.status})"
    others = [str(i) for i in msg.alternatives if i != msg.id]
    click.echo(f"--- {msg.id} · {msg.role}{status} · {_when(msg.created_at)}"
               + (f" · {msg.model}" if msg.model else "")
               + (f" · alternatives: {', '.join(others)}" if others else ""))
    click.echo(msg.content)
    for a in msg.attachments:
        click.echo(f"  attached: {a.path} ({a.kind}, {a.lines} line"
                   f"{'s' if a.lines != 1 else ''})")
    for c in msg.citations:
        click.echo(f"  [{c.marker}] {_where(c.path, c.page, c.line_start, c.line_end)}"
                   + _drift_note(c))
        if c.drift is not None and c.drift.state == "changed":
            for line in c.snippet.splitlines()[:6]:
                click.echo(f"      ~ {line}")
    click.echo("")


def _where(path: str, page: int | None, start: int | None, end: int | None) -> str:
    return ", ".join(x for x in (path, f"p. {page}" if page else "",
                                 f"lines {start}-{end}" if start is not None else "") if x)


def _drift_note(c: Citation) -> str:
    """What became of the cited passage since the answer was written."""
    d = c.drift
    if d is None or d.state == "current":
        return ""
    if d.state == "moved":
        return f"  [moved: now {_where(d.path, d.page, d.line_start, d.line_end)}]"
    if d.state == "changed":
        return "  [changed: the file no longer says this; the cited passage was:]"
    return "  [missing: the document was removed from the library]"


def _print_settings(settings: dict[str, dict[str, object]]) -> None:
    """The session's settings, one a line, marking those that come from the configuration."""
    for name, item in settings.items():
        value = item["value"]
        if isinstance(value, list):
            value = ", ".join(map(str, value))
        elif isinstance(value, bool):
            value = "on" if value else "off"
        if name == "system_prompt":
            text = str(value or "(Parley's grounded-answer prompt)")
            value = text.replace("\n", "\n    ")
        shown = "-" if value is None else value
        origin = "" if item["from"] == "session" else f"  ({item['from']})"
        click.echo(f"{name.replace('_', ' ')}: {shown}{origin}")
    click.echo("")


def _unreadable(detail: SessionDetail) -> list[str]:
    from engine.db.coltypes import UnreadableText

    bad = [f"message {m.id}" for m in detail.messages if isinstance(m.content, UnreadableText)]
    bad += [f"a citation of message {m.id}" for m in detail.messages for c in m.citations
            if isinstance(c.snippet, UnreadableText)]
    if isinstance(detail.session.title, UnreadableText):
        bad.insert(0, "the title")
    return bad


@sessions_group.command("show")
@click.argument("session_id", type=int)
@click.option("--all-branches", is_flag=True,
              help="Every message of every branch, not only the active one.")
@json_option
@run
async def show(session_id: int, all_branches: bool, as_json: bool) -> None:
    """Show a session: every message with its role, status, time and citations (and an
    answer's tool calls; 'parley tools runs --session ID' has their results).

    A value that cannot be decrypted is shown as unreadable, the rest of the session
    still prints, and the command exits with 1.
    """
    from engine.session_setup.settings import described

    async with open_engine() as engine:
        detail = await engine.sessions.get(session_id, all_branches=all_branches)
        settings = described(detail.session, engine)
        answers = [m.id for m in detail.messages if m.role == "assistant"]
        runs = await engine.tools.runs_of(answers) if answers and not as_json else {}
    if as_json:
        print_json({**to_jsonable(detail), "settings": settings})
    else:
        s = detail.session
        click.echo(f"# {s.title}\n{s.message_count} messages · model {s.model or '-'} · "
                   f"updated {_when(s.updated_at)}\n")
        _print_settings(settings)
        for msg in detail.messages:
            _print_message(msg)
            for tool_run in runs.get(msg.id, ()):  # the tool calls of an answer
                click.echo(f"    tool {tool_run.server}.{tool_run.tool} "
                           f"{tool_run.arguments[:60]} → {tool_run.status} "
                           f"({tool_run.decision})")
    bad = _unreadable(detail)
    if bad:
        fail(f"{', '.join(bad)} of session {session_id} cannot be decrypted (corrupted, or "
             "written under another key)", "the rest of the session is shown above")


@sessions_group.command("set")
@click.argument("session_id", type=int)
@click.option("--provider", metavar="NAME", help="Provider under 'providers' ('' for the "
              "configured one, 'extractive' for none).")
@click.option("--model", metavar="NAME", help="Model on the provider ('' for the configured "
              "one). A model the server does not list is refused.")
@click.option("--system", "system_prompt", metavar="TEXT",
              help="System prompt ('-' reads stdin, '' returns to the configured one).")
@click.option("--collection", "collections", multiple=True, metavar="NAME",
              help="Search only these collections (repeatable or comma-separated).")
@click.option("--all-collections", is_flag=True, help="Search all collections again.")
@click.option("--rag/--no-rag", default=None, help="Search documents before answering.")
@click.option("--param", "params", multiple=True, metavar="K=V",
              help="temperature, max_tokens or top_k (K= returns to the configured value).")
@click.option("--tools", "tool_names", multiple=True, metavar="SERVER.TOOL",
              help="Let the model call only these tools (globs like files.*; repeatable or "
                   "comma-separated). Turns tools on for the session.")
@click.option("--all-tools", "tool_mode", flag_value="all",
              help="Let the model call every offered tool in this session.")
@click.option("--no-tools", "tool_mode", flag_value="none", help="No tools in this session.")
@click.option("--default-tools", "tool_mode", flag_value="default",
              help="Follow the configuration again (tools.enabled).")
@json_option
@run
async def set_settings(session_id: int, provider: str | None, model: str | None,
                       system_prompt: str | None, collections: tuple[str, ...],
                       all_collections: bool, rag: bool | None, params: tuple[str, ...],
                       tool_names: tuple[str, ...], tool_mode: str | None,
                       as_json: bool) -> None:
    """Change the settings of session SESSION_ID; they apply from its next question."""
    from engine.errors import UsageError
    from engine.session_setup.settings import UNSET, described

    if collections and all_collections:
        raise UsageError("--collection and --all-collections cannot be combined",
                         "name the collections, or search all of them")
    if tool_names and tool_mode:
        raise UsageError(f"--tools and --{tool_mode}-tools cannot be combined",
                         "name the tools, or choose all, none or the default")
    tools = {"all": ["*"], "none": [], "default": None}.get(tool_mode or "", UNSET)
    if tool_names:
        tools = list(tool_names)
    if system_prompt == "-":
        system_prompt = sys.stdin.read() if sys.stdin is not None else ""
    changes = {
        "provider": UNSET if provider is None else provider,
        "model": UNSET if model is None else model,
        "system_prompt": UNSET if system_prompt is None else system_prompt,
        "collections": [] if all_collections else names_of(collections) or UNSET,
        "rag": UNSET if rag is None else rag,
        "params": parse_pairs(params) or None,
    }
    if all(v is UNSET or v is None for v in changes.values()) and tools is UNSET:
        raise UsageError("nothing to change",
                         "pass --model, --provider, --system, --collection, --rag/--no-rag, "
                         "--param or --tools/--all-tools/--no-tools")
    changes["tools"] = tools
    async with open_engine() as engine:
        summary, warnings = await engine.chat.configure(session_id, **changes)
        settings = described(summary, engine)
    for warning in warnings:
        info(f"parley: warning: {warning}")
    if as_json:
        print_json(settings)
    else:
        _print_settings(settings)
        info(f"session {session_id} updated: the next question uses these settings")


@sessions_group.command("switch")
@click.argument("session_id", type=int)
@click.argument("message_id", type=int)
@run
async def switch(session_id: int, message_id: int) -> None:
    """Make the branch through MESSAGE_ID the active one of SESSION_ID.

    Regenerating an answer or editing a question keeps the old version as another branch;
    'sessions show' lists each message's alternatives. The branch continues to its newest
    message, and 'parley ask --session' goes on from there.
    """
    async with open_engine() as engine:
        leaf = await engine.chat.branches.switch(session_id, message_id)
    info(f"session {session_id} now continues from message {leaf.id}")


@sessions_group.command("rename")
@click.argument("session_id", type=int)
@click.argument("title")
@run
async def rename(session_id: int, title: str) -> None:
    """Give session SESSION_ID a new TITLE."""
    async with open_engine() as engine:
        summary = await engine.sessions.rename(session_id, title)
    info(f"session {summary.id} renamed")


@sessions_group.command("delete")
@click.argument("session_id", type=int)
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@run
async def delete(session_id: int, yes: bool) -> None:
    """Delete a session, its messages and citations, for good."""
    async with open_engine() as engine:
        summary = (await engine.sessions.get(session_id)).session
        confirmed = yes or click.confirm(
            f"Delete session {session_id} \"{summary.title}\" and its messages for good?",
            err=True)
        gone = await engine.sessions.delete(session_id) if confirmed else None
    if gone is None:
        fail("not deleted", "pass --yes to delete without asking")
        return
    info(f"deleted session {gone.id} ({gone.messages} messages, {gone.citations} citations)")


@sessions_group.command("archive")
@click.argument("session_id", type=int)
@click.option("--undo", is_flag=True, help="Bring an archived session back.")
@run
async def archive(session_id: int, undo: bool) -> None:
    """Archive a session (hidden from 'sessions list' unless --all)."""
    async with open_engine() as engine:
        summary = await engine.sessions.set_archived(session_id, not undo)
    info(f"session {summary.id} {'archived' if summary.archived else 'restored'}")


@sessions_group.command("export")
@click.argument("session_id", type=int)
@click.option("--format", "fmt", type=click.Choice(["json", "md"]), default="json",
              show_default=True, help="json keeps everything (import reads it); md is for reading.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (mode 0600) instead of stdout.")
@run
async def export(session_id: int, fmt: str, output: Path | None) -> None:
    """Export a session. The export is plain text: keep it as safe as the key."""
    async with open_engine() as engine:
        text = await engine.sessions.export(session_id, fmt)
    if output is None:
        click.echo(text, nl=False)
        return
    fd = os.open(output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write(text)
    info(f"exported session {session_id} to {output}")


@sessions_group.command("import")
@click.argument("file", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@json_option
@run
async def import_(file: Path, as_json: bool) -> None:
    """Import a session from a JSON export (FILE, or - for stdin). It gets new ids."""
    from engine.errors import UsageError

    try:
        data = sys.stdin.buffer.read() if str(file) == "-" else file.read_bytes()
    except OSError as exc:
        raise UsageError(f"cannot read {file}: {exc.strerror}", "check the path") from None
    async with open_engine() as engine:
        result = await engine.sessions.import_(data, name="stdin" if str(file) == "-" else
                                               str(file))
    if as_json:
        print_json(result)
        return
    click.echo(result.session.id)
    info(f"imported \"{result.session.title}\" as session {result.session.id} "
         f"({result.messages} messages, {result.citations} citations)")
    if result.skipped_collections:
        info(f"collections not found here, not attached: {', '.join(result.skipped_collections)}")


@sessions_group.command("search")
@click.argument("text")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True)
@json_option
@run
async def search(text: str, limit: int, as_json: bool) -> None:
    """Search message contents and titles of every session (case-insensitive)."""
    async with open_engine() as engine:
        result = await engine.sessions.search(text, limit=limit)
    if as_json:
        print_json(result)
    else:
        for hit in result.hits:
            where = f"{hit.session_id}/{hit.message_id}" if hit.message_id else \
                f"{hit.session_id}"
            click.echo(f"{where:>12}  {_when(hit.created_at)}  {hit.role or 'title':9}  "
                       f"{hit.snippet}")
        info(f"{len(result.hits)} hit(s){', more exist: raise --limit' if result.truncated else ''}"
             f" in {result.scanned} values")
    if result.unreadable:
        info(f"parley: warning: {result.unreadable} value(s) could not be decrypted and were "
             "not searched")


@sessions_group.command("verify")
@click.argument("session_id", type=int, required=False)
@json_option
@run
async def verify(session_id: int | None, as_json: bool) -> None:
    """Check every citation of a session (or of all sessions) against the library.

    Each is current (its source still says it, there), moved (found again elsewhere in
    the file: the new place is shown), changed (no longer in the file) or missing (the
    document was removed). Exits with 0 whatever the states: they are data, not errors.
    """
    async with open_engine() as engine:
        checks = await engine.verify_citations(session_id)
    if as_json:
        print_json({"citations": checks})
        return
    if not checks:
        info("no citations" + (f" in session {session_id}" if session_id is not None else ""))
        return
    counts: dict[str, int] = {}
    for check in checks:
        c = check.citation
        state = c.drift.state if c.drift else "current"
        counts[state] = counts.get(state, 0) + 1
        click.echo(f"{check.session_id:>5}/{check.message_id:<6} {state:8} [{c.marker}] "
                   f"{_where(c.path, c.page, c.line_start, c.line_end)}" + _drift_note(c))
    info(", ".join(f"{n} {state}" for state, n in sorted(counts.items())))


COMMANDS = [sessions_group]
