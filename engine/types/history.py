"""Chat history: sessions and their messages, decrypted, and history search
(``engine.history``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from engine.types.citations import Citation
from engine.types.session_setup import AttachmentInfo


@dataclass(frozen=True, slots=True)
class Message:
    """One message of a session, decrypted."""

    id: int
    session_id: int
    parent_id: int | None
    role: str  # "system" | "user" | "assistant"
    content: str
    status: str  # "complete" | "interrupted" | "error"
    model: str | None
    created_at: datetime
    error: str | None = None  # set when the content could not be decrypted or the call failed
    citations: tuple[Citation, ...] = ()
    # On an active branch, the ids of this message and its siblings (the answers of one
    # question, the versions of an edited question), oldest first; empty when it has none.
    alternatives: tuple[int, ...] = ()
    attachments: tuple[AttachmentInfo, ...] = ()  # files sent with a question


@dataclass(frozen=True, slots=True)
class SessionSummary:
    """A chat session as listed in the sidebar or by ``parley sessions list``."""

    id: int
    title: str
    model: str | None
    provider: str | None
    message_count: int
    created_at: datetime
    updated_at: datetime
    archived: bool = False
    collections: tuple[str, ...] = ()
    system_prompt: str | None = None
    rag: bool | None = None  # None: chat.rag
    params: dict[str, float | int] = field(default_factory=dict)  # temperature, top_k, ...
    tools: tuple[str, ...] | None = None  # server.tool globs; None: tools.enabled, (): none
    tools_persona: str | None = None  # the persona its tools came from (not changed since)


@dataclass(frozen=True, slots=True)
class SessionDetail:
    """A session with its messages (the active branch, oldest first)."""

    session: SessionSummary
    messages: tuple[Message, ...] = ()


@dataclass(frozen=True, slots=True)
class SessionDeleted:
    """What deleting a session removed."""

    id: int
    messages: int
    citations: int


@dataclass(frozen=True, slots=True)
class SessionImported:
    """A session created from an export file (with new ids)."""

    session: SessionSummary
    messages: int
    citations: int
    skipped_collections: tuple[str, ...] = ()  # named in the file, absent here


@dataclass(frozen=True, slots=True)
class HistoryHit:
    """A place in the chat history where the searched text occurs."""

    session_id: int
    session_title: str
    message_id: int | None  # None when the session title matched
    role: str | None
    created_at: datetime
    snippet: str  # the text around the match, on one line
    match_start: int  # where the match is within ``snippet``
    match_end: int


@dataclass(frozen=True, slots=True)
class HistorySearchResult:
    """Hits of a history search, newest first."""

    query: str
    hits: tuple[HistoryHit, ...]
    scanned: int  # values decrypted and searched
    unreadable: int  # values that could not be decrypted (skipped)
    truncated: bool  # the search stopped at its limit: older hits may exist
