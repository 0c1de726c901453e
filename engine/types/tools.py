"""Tools: the turn events of tool calls, the questions a front end asks the user (approval,
trust), and tools, servers and runs as listed (``engine.tools``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


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
class ToolNotice:
    """A turn event: something about the tools the user should know (a server that did
    not start); the answer goes on without it."""

    message: str


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
class TrustRequest:
    """What a front end shows before a local MCP server's command line first runs."""

    server: str
    command_line: str  # the command and its arguments, shell-quoted
    env_names: tuple[str, ...]  # names only: values may be secrets
    cwd: str | None
    changed: bool  # the user trusted another command line for this server before


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
