"""Settings of tools the model may call: the policy and the MCP servers."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from engine.config.base import Section as _Section


class ToolsSettings(_Section):
    """Tools the model may call: MCP servers and Parley's own search."""

    enabled: bool = False
    """Offer tools to models at all (``parley ask --tools`` turns them on for one question)."""
    approval: Literal["ask", "auto", "never"] = "ask"
    """Tools not in ``allow``: ``ask`` before each call, ``auto`` run them, ``never`` refuse
    them (the model is told)."""
    allow: list[str] = ["parley.search"]
    """``server.tool`` globs that run without asking (``files.read_*``, ``parley.*``)."""
    deny: list[str] = []
    """``server.tool`` globs never offered to the model; deny beats allow and every answer."""
    ask_when_sources: bool = True
    """While retrieved passages or another server's results are in the prompt, tools not in
    ``allow`` ask even under ``approval: auto`` (injection through documents)."""
    builtin_search: bool = True
    """Offer Parley's own document search as the tool ``parley.search``."""
    max_rounds: int = Field(6, ge=1, le=100)
    """Model requests per answer that may carry tool calls; the last goes without tools."""
    max_calls: int = Field(16, ge=1, le=1000)
    """Tool calls per answer, across rounds."""
    max_repeats: int = Field(2, ge=1, le=100)
    """The same call (tool and arguments) runs this many times per answer; more is refused."""
    call_timeout: float = Field(60.0, gt=0)
    """Seconds a tool call may take."""
    startup_timeout: float = Field(30.0, gt=0)
    """Seconds an MCP server may take to start and list its tools."""
    max_result_chars: int = Field(16000, ge=200)
    """Characters of a result sent to the model: longer ones keep head and tail, marked."""
    store_max_chars: int = Field(1_000_000, ge=1000)
    """Characters of a result stored (encrypted) with the answer."""
    parallel_calls: bool = True
    """Run the calls a model asks for in one round at the same time (approval is still
    asked one by one, in the model's order); false runs them one after another."""


class MCPServerSettings(_Section):
    """An MCP server: a command (stdio) or a URL (Streamable HTTP)."""

    command: str | None = None
    """Program to start (stdio). It gets only HOME, PATH, SHELL, TERM, USER, LOGNAME and
    ``env``: never Parley's variables, keys or database URL."""
    args: list[str] = []
    """Its arguments (``~`` is expanded)."""
    env: dict[str, str] = {}
    """Variables added to its environment; ``${VAR}`` / ``${VAR:-default}`` read ours."""
    cwd: str | None = None
    """Working directory of the command."""
    url: str | None = None
    """Streamable HTTP endpoint, e.g. ``http://127.0.0.1:8000/mcp``."""
    headers: dict[str, str] = {}
    """HTTP headers, ``${VAR}`` expanded: ``Authorization: "Bearer ${TOKEN}"``."""
    enabled: bool = True
    """Offer this server's tools."""
    call_timeout: float | None = Field(None, gt=0)
    """Seconds a call may take on this server. Empty: ``tools.call_timeout``."""
    trusted: bool = False
    """Start this command without asking first. Otherwise the first start of a command
    line (command, args, env names), and of every changed one, waits for the user's yes."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("an MCP server url must start with http:// or https://")
        return value or None

    def model_post_init(self, _context: Any) -> None:
        if bool(self.command) == bool(self.url):
            raise ValueError("give either 'command' (a local server) or 'url' (an HTTP one)")
