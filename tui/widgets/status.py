"""The status bar on top of every screen: the sections, and what Parley is talking to.

Left: the sections with their keys, the current one highlighted (click or press the key).
Right: the model and provider, the database backend, and the context tokens in use out of
the model's window. The app owns one ``StatusInfo`` (a reactive) and every bar shows it.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from textual.content import Content
from textual.widget import Widget

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


def sections_content(current: str) -> Content:
    """The left-hand side: the brand, then each section (a link) with its key."""
    parts: list[Content | tuple[str, str] | str] = [("◆ ", "$accent"), ("parley", "bold"), "  "]
    for mode, key, label in SECTIONS:
        style = "bold $foreground on $accent 25%" if mode == current else "$foreground 80%"
        parts.append(Content.from_markup(
            f"[{style}][@click=app.switch_mode('{mode}')] {label} [$text-muted]{key}[/] [/][/]"))
    return Content.assemble(*parts)


class StatusBar(Widget):
    """The bar on top of each screen. ``mode`` names the section the screen belongs to.

    One widget draws the whole line (the sections on the left, the status on the right):
    it is on every screen, so it costs as little as a line can before the first frame."""

    def __init__(self, mode: str) -> None:
        super().__init__(id="status-bar")
        self.mode = mode
        self._sections = sections_content(mode)
        self._info: StatusInfo | None = None

    def on_mount(self) -> None:
        self.watch(self.app, "status", self._show, init=True)

    def _show(self, info: StatusInfo) -> None:
        self._info = info
        self.refresh()

    def render(self) -> Content:
        left = Content(" ") + self._sections
        right = status_content(self._info) + " " if self._info is not None else Content()
        gap = self.size.width - left.cell_length - right.cell_length
        if gap < 1:  # too narrow for both: the status keeps its start, the sections stay
            right = right.truncate(max(0, self.size.width - left.cell_length - 1))
            gap = 1
        return Content.assemble(left, " " * gap, right)
