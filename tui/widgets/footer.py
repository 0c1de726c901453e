"""The footer: Textual's, rebuilt only when the keys it shows change.

Textual rebuilds the footer on every change of the active bindings (each focus change),
and every rebuilt key is styled again, twice (its compact class is set, then bound). Before
the first frame it was built three times with the same keys: two thirds of all the styling
work of that frame. Here a rebuild with the same keys is skipped.
"""

from __future__ import annotations

from typing import Any

from textual.widgets import Footer as TextualFooter


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

    async def recompose(self) -> None:
        if not self._bindings_ready or not self.is_attached:
            await super().recompose()
            return
        keys = self._keys()
        if keys == self._shown:
            return
        self._shown = keys
        await super().recompose()
