"""Settings of the terminal interface (read before the first frame by
``engine.config.early``, validated here right after it)."""

from __future__ import annotations

from typing import Any

from pydantic import field_validator

from engine.config.base import Section as _Section
from engine.config.files import flat_keys


class UISettings(_Section):
    """The terminal interface."""

    theme: str = "textual-dark"
    """A Textual theme name. Unset, the app uses the theme last picked in it."""
    show_sidebar: bool = True
    """Show the sessions sidebar at start."""
    editor: str | None = None
    """Command that opens a source at a line. Empty: ``$EDITOR``, then ``$PAGER``."""
    keys: dict[str, str] = {}
    """Keys per action (``chat.new_session: ctrl+n``; several: ``"ctrl+n,f6"``). The names
    and the check for conflicts are the terminal UI's (``tui.keys``)."""
    enter_sends: bool = True
    """Enter sends the question (Ctrl+J adds a line). False: Enter adds a line and Ctrl+J
    or Alt+Enter sends."""

    @field_validator("keys", mode="before")
    @classmethod
    def _flat_keys(cls, value: Any) -> Any:
        """``chat: {new_session: ctrl+n}`` is ``chat.new_session: ctrl+n``; a list of keys
        is the comma-separated string."""
        return flat_keys(value)
