"""Chat setup: which documents a chat searches, files sent with a question, a model's
context window and named presets (``engine.session_setup``)."""

from __future__ import annotations

from dataclasses import dataclass, field


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
    tools: tuple[str, ...] | None = None  # server.tool globs; None: tools.enabled, (): none
