"""The footer: the keys of the focused widget and its screen, drawn as one line.

Textual's footer is a container with one widget per key, rebuilt on every change of the
active bindings (each focus change). Eleven key widgets were a third of the work before the
first frame: each is composed, styled, laid out and sent its own events. This footer is one
widget that draws the same line (each key and its description in the theme's footer
colours, the palette's key on the right after a thin rule) and redraws only when the keys
it shows change. A click on a key presses it (a disabled key rings the bell); the key under
the mouse is highlighted and its tooltip shown. When the line is too narrow, the keys that
do not fit are left out from the end, the palette's key stays.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

from rich.style import Style
from rich.text import Text
from textual import events
from textual.widget import Widget

if TYPE_CHECKING:
    from textual.screen import Screen

RULE = "▏"  # between the keys and the palette's key (Textual draws it as a vkey border)


@dataclass(frozen=True, slots=True)
class FooterItem:
    """One key the footer shows."""

    key: str  # as bound ("ctrl+n"): what a click presses
    key_display: str  # as shown ("^n")
    description: str
    action: str
    enabled: bool
    tooltip: str


class Footer(Widget, can_focus=False):
    """The key bindings of the focused widget and its screen (see the module docstring)."""

    ALLOW_SELECT = False
    COMPONENT_CLASSES: ClassVar[set[str]] = {
        "footer-key--key", "footer-key--description", "footer--hover", "footer--rule"}
    DEFAULT_CSS = """
    Footer {
        dock: bottom;
        height: 1;
        color: $footer-foreground;
        background: $footer-background;
        .footer-key--key {
            color: $footer-key-foreground;
            background: $footer-key-background;
            text-style: bold;
        }
        .footer-key--description {
            color: $footer-description-foreground;
            background: $footer-description-background;
        }
        .footer--hover {
            background: $block-hover-background;
        }
        .footer--rule {
            color: $foreground 20%;
        }
    }
    """

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(id=id, classes=classes)
        self.items: tuple[FooterItem, ...] = ()
        self.palette: FooterItem | None = None
        self._spans: list[tuple[int, int, FooterItem]] = []  # cells each drawn key covers
        self._hover: FooterItem | None = None

    def on_mount(self) -> None:
        self.screen.bindings_updated_signal.subscribe(self, self.bindings_changed)
        self._update()

    def on_unmount(self) -> None:
        self.screen.bindings_updated_signal.unsubscribe(self)

    def bindings_changed(self, screen: Screen[object]) -> None:
        if screen.app.app_focus and self.is_attached and screen is self.screen:
            self._update()

    def _update(self) -> None:
        """Read the active bindings; redraw only when what is shown changes."""
        app = self.app
        active = self.screen.active_bindings
        items = []
        seen_actions: set[str] = set()
        for _, binding, enabled, tooltip in active.values():
            if binding.show and binding.action not in seen_actions:  # one key per action
                seen_actions.add(binding.action)
                items.append(FooterItem(binding.key, app.get_key_display(binding),
                                        binding.description, binding.action, enabled,
                                        tooltip))
        palette = None
        if app.ENABLE_COMMAND_PALETTE:
            found = active.get(app.COMMAND_PALETTE_BINDING)
            if found is not None:
                _, binding, enabled, _ = found
                palette = FooterItem(binding.key, app.get_key_display(binding),
                                     binding.description, binding.action, enabled,
                                     binding.tooltip or binding.description)
        if (tuple(items), palette) != (self.items, self.palette):
            self.items, self.palette = tuple(items), palette
            self.refresh()

    # -- drawing ----------------------------------------------------------------------------
    def _piece(self, item: FooterItem) -> Text:
        """`` KEY description `` in the footer's colours (dim when disabled)."""
        key = self.get_component_rich_style("footer-key--key")
        description = self.get_component_rich_style("footer-key--description")
        if item is self._hover:
            hover = self.get_component_rich_style("footer--hover")
            key, description = key + hover, description + hover
        piece = Text.assemble((f" {item.key_display} ", key),
                              (f"{item.description} " if item.description else "", description))
        if not item.enabled:
            piece.stylize(Style(dim=True))
        return piece

    def render(self) -> Text:
        width = self.size.width
        tail = Text()
        if self.palette is not None:
            tail = Text.assemble((RULE, self.get_component_rich_style("footer--rule")),
                                 self._piece(self.palette))
        room = width - tail.cell_len
        line = Text()
        spans: list[tuple[int, int, FooterItem]] = []
        for item in self.items:
            piece = self._piece(item)
            if line.cell_len + piece.cell_len > room:
                break  # keys that do not fit are left out: the palette's key stays
            spans.append((line.cell_len, line.cell_len + piece.cell_len, item))
            line.append_text(piece)
        if self.palette is not None:
            start = max(room, line.cell_len) + 1
            spans.append((start, start + tail.cell_len - 1, self.palette))
            line.append(" " * (max(room, line.cell_len) - line.cell_len))
            line.append_text(tail)
        self._spans = spans
        return line

    # -- the mouse --------------------------------------------------------------------------
    def item_at(self, x: int) -> FooterItem | None:
        """The key drawn at column ``x`` (None between keys)."""
        return next((item for start, end, item in self._spans if start <= x < end), None)

    def on_mouse_move(self, event: events.MouseMove) -> None:
        self._hover_over(self.item_at(event.x))

    def on_leave(self) -> None:
        self._hover_over(None)

    def _hover_over(self, item: FooterItem | None) -> None:
        if item is not self._hover:
            self._hover = item
            self.tooltip = item.tooltip if item is not None and item.tooltip else None
            self.refresh()

    def on_mouse_down(self, event: events.MouseDown) -> None:
        item = self.item_at(event.x)
        if item is None:
            return
        if item.enabled:
            self.app.simulate_key(item.key)
        else:
            self.app.bell()
