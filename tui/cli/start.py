"""Starting the terminal UI from the command line (imports Textual only here)."""

from __future__ import annotations

from tui.cli.common import AppContext, fail


def start_tui(context: AppContext) -> None:
    """Validate the configuration before any UI appears, then run the app."""
    from engine.errors import ParleyError

    try:
        settings = context.settings()
    except ParleyError as exc:
        fail(exc.message, exc.hint, exc.exit_code)
        return
    from tui.app import ParleyApp

    ParleyApp(settings).run()
