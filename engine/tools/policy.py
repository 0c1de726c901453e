"""Whether a tool call may run: deny and allow globs, the approval mode, the taint rule.

Globs match the canonical ``server.tool`` name (never the wire name the model sees), so a
deny pattern written for an MCP server's tool always matches it. Deny wins over allow, over
"always" answers and over ``auto``: a gate that fails open is the worst failure.

The taint rule: while retrieved passages, or results from *another* server, are in the
prompt, a tool outside ``allow`` asks even under ``approval: auto`` (a document can carry
instructions aimed at the model).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from engine.config import ToolsSettings

Verdict = Literal["deny", "allow", "auto", "ask", "never"]


def matches(name: str, patterns: Iterable[str]) -> bool:
    """True when the canonical ``name`` matches one of the globs (case-sensitive)."""
    return any(fnmatchcase(name, pattern) for pattern in patterns)


@dataclass(frozen=True, slots=True)
class Policy:
    """The tool policy of one turn (settings with the turn's overrides applied)."""

    approval: str
    allow: tuple[str, ...]
    deny: tuple[str, ...]
    ask_when_sources: bool

    @classmethod
    def of(cls, settings: ToolsSettings, approval: str | None = None) -> Policy:
        return cls(approval or settings.approval, tuple(settings.allow), tuple(settings.deny),
                   settings.ask_when_sources)

    def offered(self, canonical: str) -> bool:
        """Denied tools are never offered to the model."""
        return not matches(canonical, self.deny)

    def static(self, canonical: str) -> Verdict:
        """The verdict before the user and the turn's state are considered."""
        if matches(canonical, self.deny):
            return "deny"
        if matches(canonical, self.allow):
            return "allow"
        return self.approval  # type: ignore[return-value]

    def verdict(self, canonical: str, *, approved: bool, tainted_by: str | None) -> Verdict:
        """``approved``: the user answered "always" or "this session" for it;
        ``tainted_by``: a description of untrusted text in the prompt, or None."""
        static = self.static(canonical)
        if static in ("deny", "allow"):
            return static
        if approved:
            return "allow"
        if static == "auto" and tainted_by and self.ask_when_sources:
            return "ask"
        return static


def taint_reason(sources: int, servers: Iterable[str], calling: str) -> str | None:
    """Why the prompt counts as untrusted for a call to server ``calling``, or None."""
    others = sorted(set(servers) - {calling, "parley"})
    if others:
        return (f"results from {', '.join(others)} are in the prompt: they may carry "
                "instructions meant for the model")
    if sources:
        return (f"{sources} retrieved passage{'s' if sources != 1 else ''} "
                f"{'are' if sources != 1 else 'is'} in the prompt: documents may carry "
                "instructions meant for the model")
    return None
