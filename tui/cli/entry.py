"""The ``parley`` entry point: plain ``parley`` starts the terminal UI without click.

``parley`` with no subcommand (at most ``--config``, ``--db`` and ``--user`` with a value)
goes straight to ``tui.cli.start``: click and the command group are imported only for
everything else, which ``tui.cli.main`` parses as before. The first frame of the terminal
UI does not wait for the command line it does not use.
"""

from __future__ import annotations

import os
import sys
from typing import Any

# the group's options that take a value, as ``tui.cli.main.cli`` declares them
_OPTIONS = ("--config", "--db", "--user")


def plain_start(args: list[str]) -> tuple[str | None, dict[str, Any]] | None:
    """(``--config``, the flag overrides) when ``args`` only start the UI; None when click
    must parse them (a subcommand, ``--help``, an option missing its value, anything else)."""
    values: dict[str, str] = {}
    rest = list(args)
    while rest:
        arg = rest.pop(0)
        name, eq, value = arg.partition("=")
        if name not in _OPTIONS:
            return None
        if not eq:
            if not rest or rest[0].startswith("-"):
                return None  # click says what is missing
            value = rest.pop(0)
        values[name] = value
    config = values.get("--config")
    if config is not None and (not config or os.path.isdir(config)):
        return None  # click's own message for an empty or directory path
    overrides: dict[str, Any] = {}
    if values.get("--db"):
        overrides["database"] = {"url": values["--db"]}
    if values.get("--user"):
        overrides["user"] = values["--user"]
    return config, overrides


def main() -> None:
    """Console-script entry point."""
    plain = plain_start(sys.argv[1:])
    if plain is None:
        from tui.cli.main import main as with_click

        with_click()
        return
    from tui.cli.start import start_tui

    start_tui(*plain)
