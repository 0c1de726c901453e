"""The footer: Textual's, rebuilt only when the keys it shows change.

Textual rebuilds the footer on every change of the active bindings (each focus change),
and every rebuilt key is styled three times: when mounted, when its compact class is set
(a key starts compact) and when it is bound to the footer's (which is not). Before the
first frame the footer was built three times with the same keys: most of the styling work
of that frame. Here a rebuild with the same keys is skipped, and a key starts with the
footer's compactness, so it is styled once.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.widgets import Footer as TextualFooter
from textual.widgets._footer import FooterKey


class Footer(TextualFooter):
    """The key bindings of the focused widget and its screen (see the module docstring)."""

    _shown: tuple[Any, ...] | None = None

    def _keys(self) -> tuple[Any, ...]:
        """What ``compose`` would show: every shown binding, enabled or not, and the
        palette's key."""
        active = self.screen.active_bindings
        shown = tuple((binding.key, binding.key_display, binding.description,
                       binding.action, binding.group, enabled, tooltip)
                      for _, binding, enabled, tooltip in active.values() if binding.show)
        palette = active.get(self.app.COMMAND_PALETTE_BINDING)
        return (shown, self.show_command_palette,
                None if palette is None else (palette[1], palette[2]))

    def compose(self) -> ComposeResult:
        for widget in super().compose():
            if isinstance(widget, FooterKey) and "compact" in (widget._reactive_connect or {}):
                # what the binding to the footer's `compact` sets on mount, set before it
                # (the palette's key is not bound: it stays compact)
                widget.set_reactive(FooterKey.compact, self.compact)
            yield widget

    async def recompose(self) -> None:
        if not self._bindings_ready or not self.is_attached:
            await super().recompose()
            return
        keys = self._keys()
        if keys == self._shown:
            return
        self._shown = keys
        await super().recompose()
