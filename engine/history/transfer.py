"""Sessions in and out of Parley: JSON export and import, Markdown export.

The JSON document keeps everything a session is: title, system prompt, model, collections,
every message of every branch (roles, status, errors, timestamps, parents) and each
message's citations and tool runs. Messages are numbered 1..n in the file (in creation order) and
parents refer to those numbers, so ``export(import(export(s))) == export(s)`` byte for
byte. Database ids of documents and chunks are not exported: in another database they would
name other documents; a citation keeps its path, page, lines and snippet.

Import validates the whole file before writing anything, names the place of the first
problem, and writes the session in one transaction with new ids.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, ValidationError
from sqlalchemy import insert, select

from engine.db import models as m
from engine.db.coltypes import UnreadableText
from engine.drift import check_citations
from engine.errors import DecryptionError, ParleyError, UsageError
from engine.types import CitationDrift, SessionImported

if TYPE_CHECKING:
    from engine.history.sessions import SessionStore

FORMAT = "parley-session"
VERSION = 1


class InvalidExport(ParleyError):
    """A file given to ``import`` is not a Parley session export."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class CitationDoc(_Strict):
    marker: int
    position: int | None = None
    path: str
    page: int | None = None
    line_start: int | None = None
    line_end: int | None = None
    score: float | None = None
    snippet: str
    # Whether the source still said this at export time; informative, not imported.
    drift: dict[str, Any] | None = None


class AttachmentDoc(_Strict):
    path: str
    kind: str = "text"
    text: str
    pages: list[list[int]] = []


class ToolRunDoc(_Strict):
    round: int = 1
    call_index: int = 0
    call_id: str
    server: str
    tool: str
    arguments: str
    result: str | None = None
    error: str | None = None
    result_chars: int = 0
    truncated: bool = False
    status: Literal["ok", "error", "denied", "timeout", "cancelled"]
    decision: str
    started_at: datetime | None = None
    duration_ms: float | None = None


class MessageDoc(_Strict):
    id: int
    parent: int | None = None
    role: Literal["system", "user", "assistant"]
    content: str
    status: Literal["complete", "interrupted", "error"] = "complete"
    model: str | None = None
    provider: str | None = None
    error: str | None = None
    created_at: datetime
    citations: list[CitationDoc] = []
    attachments: list[AttachmentDoc] = []
    tool_runs: list[ToolRunDoc] = []


class SessionDoc(_Strict):
    title: str
    model: str | None = None
    provider: str | None = None
    system_prompt: str | None = None
    archived: bool = False
    collections: list[str] = []
    created_at: datetime
    updated_at: datetime
    current: int | None = None
    rag: bool | None = None
    params: dict[str, float | int] = {}
    tools: list[str] | None = None
    tools_persona: str | None = None  # the persona the tools came from, if they did


class ExportDoc(_Strict):
    format: Literal["parley-session"]
    version: Literal[1]
    session: SessionDoc
    messages: list[MessageDoc] = []


def _utc(value: datetime) -> str:
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).astimezone(UTC).isoformat()


async def _runs(store: SessionStore, session_id: int) -> dict[int, list[m.ToolRun]]:
    async with store.db.read() as s:
        found: dict[int, list[m.ToolRun]] = {}
        for run in await s.scalars(select(m.ToolRun).where(
                m.ToolRun.session_id == session_id, m.ToolRun.user_id == store.user_id,
                m.ToolRun.message_id.isnot(None)).order_by(m.ToolRun.id)):
            found.setdefault(run.message_id, []).append(run)
        return found


_RUN_FIELDS = ("round", "call_index", "call_id", "server", "tool", "arguments", "result",
               "error", "result_chars", "truncated", "status", "decision", "duration_ms")


async def _load(store: SessionStore, session_id: int) -> tuple[
        m.Session, list[m.Message], dict[int, list[m.Citation]], list[str],
        dict[int, CitationDrift]]:
    async with store.db.read() as s:
        row = await store._owned(s, session_id)
        messages = list((await s.scalars(select(m.Message).where(m.Message.session_id == row.id)
                                         .order_by(m.Message.id))).all())
        cites: dict[int, list[m.Citation]] = {}
        for c in await s.scalars(
                select(m.Citation).join(m.Message, m.Message.id == m.Citation.message_id)
                .where(m.Message.session_id == row.id)
                .order_by(m.Citation.message_id, m.Citation.marker, m.Citation.id)):
            cites.setdefault(c.message_id, []).append(c)
        names = (await store._collection_names(s, [row.id])).get(row.id, [])
        drift = await check_citations(s, store.user_id,
                                      [c for group in cites.values() for c in group])
        return row, messages, cites, sorted(names), drift


async def _attachments(store: SessionStore, session_id: int) -> dict[int, list[m.Attachment]]:
    """The attachments of a session's questions, by message id, in order."""
    out: dict[int, list[m.Attachment]] = {}
    async with store.db.read() as s:
        for row in await s.scalars(
                select(m.Attachment).join(m.Message, m.Message.id == m.Attachment.message_id)
                .where(m.Message.session_id == session_id)
                .order_by(m.Attachment.message_id, m.Attachment.position)):
            out.setdefault(row.message_id, []).append(row)
    return out


async def export_session(store: SessionStore, session_id: int, fmt: str) -> str:
    """The session as ``json`` or ``md`` text."""
    if fmt not in ("json", "md"):
        raise UsageError(f"unknown export format '{fmt}'", "use --format json or --format md")
    row, messages, cites, names, drift = await _load(store, session_id)
    if fmt == "md":
        return render_markdown(row, messages, cites, names, drift)
    _refuse_unreadable(row, messages, cites)
    attached = await _attachments(store, row.id)
    runs = await _runs(store, row.id)
    number = {msg.id: i for i, msg in enumerate(messages, start=1)}
    doc = {
        "format": FORMAT, "version": VERSION,
        "session": {
            "title": row.title, "model": row.model, "provider": row.provider,
            "system_prompt": row.system_prompt, "archived": row.archived,
            "collections": names, "created_at": _utc(row.created_at),
            "updated_at": _utc(row.updated_at), "current": number.get(row.current_message_id),
            "rag": row.rag, "params": dict(row.params or {}), "tools": row.tools,
            "tools_persona": row.tools_persona,
        },
        "messages": [{
            "id": number[msg.id], "parent": number.get(msg.parent_id), "role": msg.role,
            "content": msg.content, "status": msg.status, "model": msg.model,
            "provider": msg.provider, "error": msg.error, "created_at": _utc(msg.created_at),
            "citations": [{
                "marker": c.marker, "position": c.position, "path": c.path, "page": c.page,
                "line_start": c.line_start, "line_end": c.line_end, "score": c.score,
                "snippet": c.snippet, "drift": _drift_doc(drift.get(c.id))}
                for c in cites.get(msg.id, ())],
            "attachments": [{"path": a.path, "kind": a.kind, "text": a.text,
                             "pages": [list(p) for p in a.pages or ()]}
                            for a in attached.get(msg.id, ())],
            **({"tool_runs": [{**{f: getattr(r, f) for f in _RUN_FIELDS},
                               "started_at": _utc(r.started_at) if r.started_at else None}
                              for r in runs[msg.id]]} if msg.id in runs else {}),
        } for msg in messages],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2) + "\n"


def _when(value: datetime) -> str:
    return f"{value.astimezone(UTC):%Y-%m-%d %H:%M} UTC"


def _drift_doc(drift: CitationDrift | None) -> dict[str, Any] | None:
    if drift is None:
        return None
    return {"state": drift.state, "path": drift.path, "page": drift.page,
            "line_start": drift.line_start, "line_end": drift.line_end}


def _drift_md(drift: CitationDrift | None) -> str:
    if drift is None or drift.state == "current":
        return ""
    if drift.state == "moved":
        where = ", ".join(x for x in (drift.path, f"p. {drift.page}" if drift.page else "",
                                      _lines(drift.line_start, drift.line_end)) if x)
        return f" _(moved: now {where})_"
    if drift.state == "changed":
        return " _(changed: the file no longer says this; quoted as cited)_"
    return " _(missing: the document was removed)_"


def render_markdown(row: m.Session, messages: list[m.Message],
                    cites: dict[int, list[m.Citation]], names: list[str],
                    drift: Mapping[int, CitationDrift] | None = None) -> str:
    """The active branch as a readable Markdown document (sources under each answer)."""
    from engine.history.sessions import SessionStore

    branch = SessionStore._branch(row, messages)
    out = [f"# {row.title}", ""]
    facts = [f"Model: {row.model}" + (f" ({row.provider})" if row.provider else "")
             if row.model else "", f"Created: {_when(row.created_at)}",
             f"Updated: {_when(row.updated_at)}",
             f"Collections: {', '.join(names)}" if names else "",
             "Archived" if row.archived else ""]
    out += [f"- {fact}" for fact in facts if fact] + [""]
    if row.system_prompt:
        out += ["## System prompt", "", row.system_prompt, ""]
    hidden = len(messages) - len(branch)
    if hidden:
        out += [f"_{hidden} message(s) on other branches are not shown; "
                "the JSON export keeps them._", ""]
    for msg in branch:
        head = [msg.role.capitalize(), _when(msg.created_at)]
        head += [msg.model] if msg.model and msg.role == "assistant" else []
        head += [msg.status] if msg.status != "complete" else []
        out += ["---", "", f"### {' · '.join(head)}", "", msg.content, ""]
        if msg.error and not isinstance(msg.content, UnreadableText):
            out += [f"> Error: {msg.error}", ""]
        if cites.get(msg.id):
            out += ["Sources:", ""]
            for c in cites[msg.id]:
                where = ", ".join(x for x in (c.path, f"p. {c.page}" if c.page else "",
                                              _lines(c.line_start, c.line_end)) if x)
                out += [f"[{c.marker}] {where}" + _drift_md((drift or {}).get(c.id))]
                out += [f"    > {line}" for line in c.snippet.splitlines() or [""]]
            out += [""]
    return "\n".join(out).rstrip() + "\n"


def _lines(start: int | None, end: int | None) -> str:
    if start is None:
        return ""
    return f"line {start}" if end in (None, start) else f"lines {start}-{end}"


def _refuse_unreadable(row: m.Session, messages: list[m.Message],
                       cites: dict[int, list[m.Citation]]) -> None:
    bad = [f"session {row.id} title" if isinstance(row.title, UnreadableText) else "",
           "its system prompt" if isinstance(row.system_prompt, UnreadableText) else ""]
    bad += [f"message {msg.id}" for msg in messages if isinstance(msg.content, UnreadableText)]
    bad += [f"a citation of message {c.message_id}" for group in cites.values() for c in group
            if isinstance(c.snippet, UnreadableText)]
    bad = [b for b in bad if b]
    if bad:
        raise DecryptionError(
            f"{len(bad)} value(s) of session {row.id} cannot be decrypted "
            f"({', '.join(bad[:3])}{', ...' if len(bad) > 3 else ''}); a JSON export would "
            "turn them into text", "read the rest with: parley sessions show "
            f"{row.id}, or export --format md")


def parse_export(data: str | bytes, name: str) -> ExportDoc:
    """The validated document, or ``InvalidExport`` naming the first problem."""
    hint = "give a file written by: parley sessions export ID --format json"
    try:
        text = data.decode("utf-8") if isinstance(data, bytes) else data
        raw = json.loads(text)
    except UnicodeDecodeError:
        raise InvalidExport(f"{name} is not UTF-8 text", hint) from None
    except json.JSONDecodeError as exc:
        raise InvalidExport(f"{name} is not valid JSON ({exc.msg} at line {exc.lineno} "
                            f"column {exc.colno})", hint) from None
    try:
        doc = ExportDoc.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in first["loc"])
        more = f" (and {exc.error_count() - 1} more)" if exc.error_count() > 1 else ""
        raise InvalidExport(f"{name} is not a Parley session export: "
                            f"{where.lstrip('.') or 'document'}: {first['msg']}{more}",
                            hint) from None
    seen: set[int] = set()
    for i, msg in enumerate(doc.messages):
        if msg.id in seen:
            raise InvalidExport(f"{name}: messages[{i}].id {msg.id} appears twice", hint)
        if msg.parent is not None and msg.parent not in seen:
            raise InvalidExport(f"{name}: messages[{i}].parent {msg.parent} names no earlier "
                                "message", hint)
        seen.add(msg.id)
    if doc.session.current is not None and doc.session.current not in seen:
        raise InvalidExport(f"{name}: session.current {doc.session.current} names no message",
                            hint)
    return doc


async def import_session(store: SessionStore, data: str | bytes, *,
                         name: str = "input") -> SessionImported:
    """Create the session described by an export document, in one transaction."""
    doc = parse_export(data, name)
    info = doc.session
    async with store.db.write() as s:
        row = m.Session(user_id=store.user_id, title=info.title, model=info.model,
                        provider=info.provider, system_prompt=info.system_prompt,
                        archived=info.archived, created_at=info.created_at,
                        updated_at=info.updated_at, rag=info.rag,
                        params=dict(info.params) or None, tools=info.tools,
                        tools_persona=info.tools_persona)
        s.add(row)
        await s.flush()
        found = (await s.scalars(select(m.Collection).where(
            m.Collection.user_id == store.user_id,
            m.Collection.name.in_(info.collections)))).all() if info.collections else []
        s.add_all(m.SessionCollection(session_id=row.id, collection_id=c.id) for c in found)
        ids: dict[int, int] = {}
        citations = []
        runs = []
        for msg in doc.messages:
            # One at a time: each message needs its parent's new id.
            ids[msg.id] = (await s.execute(insert(m.Message).values(
                user_id=store.user_id, session_id=row.id, parent_id=ids.get(msg.parent),
                role=msg.role, content=msg.content, status=msg.status, model=msg.model,
                provider=msg.provider, error=msg.error, created_at=msg.created_at,
            ).returning(m.Message.id))).scalar_one()
            citations += [{**c.model_dump(exclude={"drift"}), "user_id": store.user_id,
                           "message_id": ids[msg.id]} for c in msg.citations]
            s.add_all(m.Attachment(user_id=store.user_id, message_id=ids[msg.id], position=n,
                                   path=a.path, kind=a.kind, text=a.text, pages=a.pages)
                      for n, a in enumerate(msg.attachments))
            runs += [m.ToolRun(**r.model_dump(), user_id=store.user_id, session_id=row.id,
                               message_id=ids[msg.id]) for r in msg.tool_runs]
        if citations:
            await s.execute(insert(m.Citation), citations)
        s.add_all(runs)
        row.current_message_id = ids.get(info.current) if info.current is not None else None
        row.updated_at = info.updated_at
    summary = await store._summary(row.id)
    skipped = tuple(sorted(set(info.collections) - {c.name for c in found}))
    return SessionImported(session=summary, messages=len(doc.messages),
                           citations=len(citations), skipped_collections=skipped)
