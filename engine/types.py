"""Plain frozen dataclasses: what the engine's verbs take and return.

Front ends see only these, never ORM rows, so a detached row can never trigger a lazy load
and the UI never depends on the storage layer.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True, slots=True)
class SchemaStatus:
    """Where the database schema stands relative to this version of Parley."""

    backend: str  # "sqlite" or "postgresql"
    url: str  # with any password masked
    current: str | None  # the applied Alembic revision, None for an empty database
    head: str  # the revision this code expects
    up_to_date: bool


@dataclass(frozen=True, slots=True)
class SchemaUpgraded:
    """The embedded database was upgraded when it was opened."""

    from_revision: str
    to_revision: str
    backup: str | None  # the copy taken before, if any


@dataclass(frozen=True, slots=True)
class Citation:
    """One source an answer cited, as stored with the message."""

    marker: int
    document_id: int | None
    chunk_id: int | None
    path: str
    page: int | None
    line_start: int | None
    line_end: int | None
    score: float | None
    snippet: str
    drift: CitationDrift | None = None  # whether the source still says this (when shown)


@dataclass(frozen=True, slots=True)
class CitationDrift:
    """Whether a stored citation still holds: ``state`` is ``current`` (same text, same
    place), ``moved`` (found again: ``page``/``line_start``/``line_end`` are the new place),
    ``changed`` (no longer in the file: only the stored snippet says what it was) or
    ``missing`` (the document was removed). ``path`` is where the document is now."""

    state: str
    path: str
    page: int | None = None
    line_start: int | None = None
    line_end: int | None = None


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


@dataclass(frozen=True, slots=True)
class SessionDetail:
    """A session with its messages (the active branch, oldest first)."""

    session: SessionSummary
    messages: tuple[Message, ...] = ()


@dataclass(frozen=True, slots=True)
class Usage:
    """Token counts and cost of one model call or of a whole turn."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    embedding_tokens: int = 0
    cost: float = 0.0
    estimated: bool = False


@dataclass(frozen=True, slots=True)
class SearchHit:
    """One chunk found by hybrid search, with what the explain mode shows."""

    rank: int
    score: float
    path: str
    document_id: int
    chunk_id: int
    page: int | None
    line_start: int | None
    line_end: int | None
    heading: str | None
    text: str
    keyword_rank: int | None = None
    vector_rank: int | None = None
    collection: str | None = None
    owner: str | None = None  # who shared the collection with you (None: your own)


@dataclass(frozen=True, slots=True)
class CollectionInfo:
    """A named set of documents indexed with one embedder."""

    id: int
    name: str
    embedder: str
    dimension: int
    document_count: int = 0
    chunk_count: int = 0
    owner: str | None = None  # who shared it with you (None: your own)
    access: str = "owner"  # "owner" | "read" | "write" (shared with you)


@dataclass(frozen=True, slots=True)
class DocumentInfo:
    """An ingested (or failed) document."""

    id: int
    collection: str
    path: str
    title: str | None
    mime: str | None
    size: int
    status: str  # "indexed" | "error"
    error: str | None
    chunk_count: int
    indexed_at: datetime | None
    tags: tuple[str, ...] = ()
    copies: tuple[tuple[str, str], ...] = ()  # (collection, path) of identical copies


# --- streaming events -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Delta:
    """A piece of answer text as it streams in."""

    text: str


@dataclass(frozen=True, slots=True)
class Sources:
    """The sources an answer cited (sent once the answer is complete)."""

    citations: tuple[Citation, ...]
    unknown_markers: tuple[int, ...] = ()  # markers in the answer that name no source


@dataclass(frozen=True, slots=True)
class Done:
    """The end of a turn: where it was stored, how it ended, what it cost."""

    session_id: int
    message_id: int
    status: str  # "complete" | "interrupted" | "error"
    usage: Usage = field(default_factory=Usage)
    model: str | None = None
    error: str | None = None


@dataclass(frozen=True, slots=True)
class IngestProgress:
    """Progress of an ingestion run: sent after each file."""

    run_id: int
    path: str
    done: int
    total: int
    # "indexed" | "linked" (a copy, stored once) | "skipped" | "error" | "pruned" |
    # "reconnecting" (not a file result: the database went away and the run waits for it;
    # ``error`` says so)
    outcome: str
    error: str | None = None
    chunks: int = 0


@dataclass(frozen=True, slots=True)
class IngestResult:
    """Totals of a finished ingestion run."""

    run_id: int
    status: str  # "complete" | "interrupted"
    files_seen: int
    indexed: int
    skipped: int
    failed: int
    pruned: int
    chunks: int
    errors: tuple[tuple[str, str], ...] = ()  # (path, reason)
    linked: int = 0  # of ``indexed``: copies of content already indexed, stored once


# --- chat turns and usage reports ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class BudgetWarning:
    """Sent before the model is called when the call would pass a spending limit that only
    warns (a limit that refuses raises ``BudgetExceeded`` instead)."""

    message: str
    period: str  # "day" | "month"
    spent: float  # already spent in the period
    estimate: float  # estimated cost of this call
    limit: float


@dataclass(frozen=True, slots=True)
class UsageRow:
    """Token usage and cost summed over one day, model or session."""

    key: str  # "2025-06-01", "provider/model" or a session id ("-" when none or deleted)
    calls: int
    prompt_tokens: int
    completion_tokens: int
    embedding_tokens: int
    cost: float
    estimated_calls: int = 0  # calls whose counts are estimates
    title: str | None = None  # the session's title when grouped by session


# --- sessions as data, history search, encryption keys ------------------------------------


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


@dataclass(frozen=True, slots=True)
class RotationProgress:
    """Progress of ``parley key rotate``: sent after each batch."""

    phase: str  # "rotate" (re-encrypting) | "verify" (checking nothing needs the old key)
    done: int  # rows visited in this phase
    total: int


@dataclass(frozen=True, slots=True)
class RotationState:
    """An unfinished key rotation, as recorded in the database."""

    phase: str  # "prepare" | "rotate" | "verify" | "retire"
    done: int
    total: int
    rewritten: int
    started_at: datetime
    new_key_location: str  # "key file" or "$NAME"


@dataclass(frozen=True, slots=True)
class RotationResult:
    """A finished key rotation."""

    rewritten: int  # values re-encrypted under the new key
    unreadable: int  # values no key could decrypt, left as they were
    seconds: float
    resumed: bool
    new_key_location: str


@dataclass(frozen=True, slots=True)
class KeyStatus:
    """Which key opens the database, and whether a rotation is unfinished."""

    source: str | None  # where the key came from, None when none was found
    key_file: str
    key_file_exists: bool
    matches: bool  # the key opens this database
    problem: str | None  # why it does not, in one line
    keys_loaded: int  # more than one while a rotation is unfinished
    encrypted_columns: tuple[str, ...]
    encrypted_values: int
    rotation: RotationState | None = None
    last_rotated_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class IngestRunInfo:
    """One ingestion run as recorded: what it was asked, what it did, which files failed."""

    id: int
    collection: str | None
    status: str  # "running" | "complete" | "interrupted" | "failed"
    target: tuple[str, ...]
    started_at: datetime
    finished_at: datetime | None
    files_seen: int
    indexed: int
    skipped: int
    failed: int
    pruned: int
    chunks: int
    errors: tuple[tuple[str, str], ...] = ()  # (path, reason); path "" for the run itself


@dataclass(frozen=True, slots=True)
class ReindexProgress:
    """Progress of a re-embedding: sent after each batch of chunks."""

    collection: str
    done: int
    total: int


@dataclass(frozen=True, slots=True)
class ReindexResult:
    """A finished re-embedding: the collection now searches with ``embedder``."""

    collection: str
    embedder: str
    dimension: int
    generation: int
    chunks: int  # chunks embedded by this call (a resumed run counts only its own)
    previous_embedder: str
    status: str = "complete"  # "complete" | "unchanged"


# --- chat setup: scope, session settings, personas, attachments, context windows ------------


@dataclass(frozen=True, slots=True)
class AttachmentInfo:
    """A file (or pasted text) sent with a question."""

    path: str  # the file's path as given, "stdin" or "pasted text"
    kind: str  # the document kind: text, markdown, pdf, ...
    lines: int
    tokens: int  # estimated


@dataclass(frozen=True, slots=True)
class ChatScope:
    """Which documents a chat searches."""

    collections: tuple[str, ...]  # searched, in order
    all: bool  # not scoped: every collection of the user
    documents: int  # indexed documents in them
    rag: bool = True
    keyword_only: tuple[str, ...] = ()  # indexed with another embedder: keywords only

    def describe(self) -> str:
        """``searching: work, papers``, ``searching: all (3)``, or why nothing is searched."""
        if not self.rag:
            return "not searching documents (RAG off)"
        if not self.collections or not self.documents:
            return "searching: nothing indexed yet"
        if self.all:
            return f"searching: all ({len(self.collections)})"
        return "searching: " + ", ".join(self.collections)


@dataclass(frozen=True, slots=True)
class Searched:
    """Sent first in a turn: which documents it searches (``first``: the session's first
    question, when front ends say so)."""

    scope: ChatScope
    first: bool


@dataclass(frozen=True, slots=True)
class NothingFound:
    """The search found no source for the question (sent before the answer streams)."""

    scope: ChatScope


@dataclass(frozen=True, slots=True)
class ContextWindow:
    """A model's context window and where the figure comes from."""

    tokens: int
    source: str  # "server (llama.cpp /props)", "config", "default", ...


@dataclass(frozen=True, slots=True)
class PersonaInfo:
    """A named chat preset: from the config file (``origin`` "config") or saved ("saved")."""

    name: str
    origin: str
    provider: str | None = None
    model: str | None = None
    system_prompt: str | None = None
    collections: tuple[str, ...] = ()
    rag: bool | None = None
    params: dict[str, float | int] = field(default_factory=dict)
    first_message: str | None = None
    description: str | None = None


@dataclass(frozen=True, slots=True)


class TeamMember:
    """A user of a PostgreSQL team database (``parley team list``)."""

    name: str
    user_id: int | None  # None: the role is in parley_member but has no user row yet
    member: bool  # holds parley_member (may use Parley)
    can_login: bool
    owner: bool  # the schema owner
    created_at: datetime | None


@dataclass(frozen=True, slots=True)
class ShareInfo:
    """A collection shared by its owner with one user (``with_user``) or everyone (None)."""

    collection: str
    owner: str
    with_user: str | None
    write: bool
    created_at: datetime


@dataclass(frozen=True, slots=True)
class KeywordSearchInfo:
    """Which keyword ranking a database uses, and why (``parley db current``/``config show``).

    ``method``: ``fts5`` (SQLite), ``pg_textsearch`` (PostgreSQL with the BM25 index) or
    ``sql-bm25`` (PostgreSQL without it: exact BM25 computed in SQL)."""

    method: str
    detail: str

# --- tools ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ToolCallStarted:
    """A turn event: the model asked for a tool call and the policy decided about it."""

    call_id: str
    server: str
    tool: str
    arguments: str  # the JSON text the model wrote
    round: int
    decision: str  # allow_list | auto | once | session | always | deny_list | denied | ...


@dataclass(frozen=True, slots=True)
class ToolCallFinished:
    """A turn event: a tool call ended (or was refused)."""

    call_id: str
    server: str
    tool: str
    arguments: str
    status: str  # ok | error | denied | timeout | cancelled
    decision: str
    result: str  # the full result text (an error or refusal sentence when not ok)
    chars: int  # characters of the full result
    truncated: bool  # the model got head and tail only
    duration_ms: float | None
    round: int


@dataclass(frozen=True, slots=True)
class ApprovalRequest:
    """What a front end shows before a tool call that needs the user's answer."""

    server: str
    tool: str
    description: str
    arguments: str  # pretty JSON when it parses, else as written
    reason: str  # why it asks: "approval is ask" or the taint rule's sentence
    session_id: int | None


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """A tool as ``parley tools list`` shows it, with its effective policy."""

    server: str
    name: str  # the tool's own name; canonical is server.name
    description: str
    policy: str  # "allow" | "ask" | "auto" | "deny" | "never"
    parameters: dict[str, object] = field(default_factory=dict)
    read_only_hint: bool | None = None

    @property
    def canonical(self) -> str:
        return f"{self.server}.{self.name}"


@dataclass(frozen=True, slots=True)
class ToolServerInfo:
    """A configured tool server: its state and tools (``error`` when it failed to start)."""

    name: str
    kind: str  # "builtin" | "stdio" | "http"
    state: str  # "ready" | "stopped" | "unavailable" | "disabled"
    tools: tuple[ToolInfo, ...] = ()
    error: str | None = None
    start_ms: float | None = None
    log_path: str | None = None


@dataclass(frozen=True, slots=True)
class ToolRunInfo:
    """A stored tool run, decrypted."""

    id: int
    session_id: int | None
    message_id: int | None
    round: int
    call_index: int
    call_id: str
    server: str
    tool: str
    arguments: str
    result: str | None
    error: str | None
    status: str
    decision: str
    result_chars: int
    truncated: bool
    started_at: datetime | None
    duration_ms: float | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class ToolNotice:
    """A turn event: something about the tools the user should know (a server that did
    not start); the answer goes on without it."""

    message: str


@dataclass(frozen=True, slots=True)
class TrustRequest:
    """What a front end shows before a local MCP server's command line first runs."""

    server: str
    command_line: str  # the command and its arguments, shell-quoted
    env_names: tuple[str, ...]  # names only: values may be secrets
    cwd: str | None
    changed: bool  # the user trusted another command line for this server before


# --- library sync: citation drift, watched folders ------------------------------------------


@dataclass(frozen=True, slots=True)
class CitationCheck:
    """One stored citation and whether it still holds (``citation.drift``)."""

    session_id: int
    message_id: int
    citation: Citation


@dataclass(frozen=True, slots=True)
class WatchedFolderInfo:
    """A folder ``parley watch`` keeps in sync with a collection."""

    id: int
    path: str
    collection: str
    include: tuple[str, ...]
    exclude: tuple[str, ...]
    tags: tuple[str, ...]
    hidden: bool
    last_sync_at: datetime | None
    last_error: str | None
    created_at: datetime


@dataclass(frozen=True, slots=True)
class WatchEvent:
    """What the folder watcher is doing: ``state`` is ``syncing`` (a run started),
    ``synced`` (a run ended: its counts), ``watching`` (waiting for changes) or ``error``."""

    state: str
    folder: str | None = None
    changed: int = 0  # files seen changed or added
    indexed: int = 0
    linked: int = 0  # of indexed: renamed/copied content, not embedded again
    removed: int = 0
    failed: int = 0
    detail: str | None = None
    at: datetime | None = None
