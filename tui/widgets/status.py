"""The status bar on top of every screen: the sections, and what Parley is talking to.

Left: the sections with their keys, the current one highlighted (click or press the key).
Right: the model and provider, the database backend, and the context tokens in use out of
the model's window. The app owns one ``StatusInfo`` (a reactive) and every bar shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.content import Content
from textual.widgets import Static

from tui.widgets.format import count

if TYPE_CHECKING:
    from engine import Settings

SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("chat", "F2", "Chat"),
    ("search", "F3", "Search"),
    ("library", "F4", "Library"),
    ("usage", "F5", "Usage"),
)


@dataclass(frozen=True, slots=True)
class StatusInfo:
    """What the status bar shows."""

    state: str = "opening"  # "opening" | "ready" | "error" | "busy"
    model: str = ""
    provider: str = ""
    backend: str = ""
    context_used: int = 0
    context_window: int = 0
    context_estimated: bool = False
    note: str = ""  # a short word on what is happening ("answering", "indexing 3/10")
    tools: str = ""  # "tools: 4" once a turn offered tools, "tools: on" before; "" when off


def model_status(info: StatusInfo, settings: Settings, provider: str | None,
                 model: str | None, used: int, estimated: bool) -> StatusInfo:
    """``info`` showing ``model`` on ``provider`` (None: the configured ones)."""
    from engine.config import ModelSettings

    chat = settings.chat
    provider = provider or chat.provider
    model = model or (chat.model if provider == chat.provider else None)
    config = settings.providers.get(provider) if provider else None
    window = config.models.get(model or "", ModelSettings()).context_window if config else 0
    tools = (info.tools or "tools: on") if settings.tools.enabled else ""
    return replace(info, provider=provider or "", model=model or "", context_window=window,
                   context_used=used, context_estimated=estimated, tools=tools)


def status_content(info: StatusInfo) -> Content:
    """The right-hand side of the bar."""
    dot = {"ready": "$success", "error": "$error", "busy": "$warning"}.get(info.state,
                                                                         "$text-muted")
    parts: list[tuple[str, str] | str] = [("● ", dot)]
    # With tools shown the line is longer: narrower separators keep it within 120 columns.
    sep = " │ " if info.tools else "  │  "
    if info.state == "opening":
        parts.append(("opening database…", "$text-muted"))
    elif info.state == "error":
        parts.append(("database unavailable", "$text-error"))
    else:
        parts.append((info.model or "offline answers (no model)", "bold"))
        if info.provider:
            parts.append((f" via {info.provider}", "$text-muted"))
        if info.backend:
            parts.extend([sep, (info.backend, "")])
        if info.context_window:
            approx = "~" if info.context_estimated else ""
            parts.extend([sep, ("ctx ", "$text-muted"),
                          f"{approx}{count(info.context_used)} / {count(info.context_window)}"])
        if info.tools:
            parts.extend([sep, (info.tools, "")])
    if info.note:
        parts.extend([sep, (info.note, "$text-warning")])
    return Content.assemble(*parts)


class StatusBar(Horizontal):
    """The bar on top of each screen. ``mode`` names the section the screen belongs to."""

    def __init__(self, mode: str) -> None:
        super().__init__(id="status-bar")
        self.mode = mode

    def compose(self) -> ComposeResult:
        yield Static(Content.assemble(("◆ ", "$accent"), ("parley", "bold")), id="brand")
        for mode, key, label in SECTIONS:
            tab = Static(Content.from_markup(
                f"[@click=app.switch_mode('{mode}')]{label} [$text-muted]{key}[/][/]"),
                classes="tab" + (" -active" if mode == self.mode else ""))
            yield tab
        yield Static(id="status-text")

    def on_mount(self) -> None:
        self.watch(self.app, "status", self._show, init=True)

    def _show(self, info: StatusInfo) -> None:
        self.query_one("#status-text", Static).update(status_content(info))
