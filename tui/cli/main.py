"""The ``parley`` command group and its entry point.

With no subcommand it starts the terminal UI (and imports Textual only then). Every other
command calls one engine verb. Importing this module imports neither Textual nor the
engine: each command imports what it needs when it runs.
"""

from __future__ import annotations

import sys
from typing import Any

import click

from tui.cli.common import AppContext

VERSION = "0.1.0"


class _Commands(click.Group):
    """A group whose subcommands are imported on first use: plain ``parley`` (the terminal
    UI) never pays for the modules of the other commands before its first paint."""

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        _register()
        return super().get_command(ctx, cmd_name)

    def list_commands(self, ctx: click.Context) -> list[str]:
        _register()
        return super().list_commands(ctx)


@click.group(cls=_Commands, invoke_without_command=True,
             context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.option("--config", "config_path", type=click.Path(dir_okay=False), envvar=None,
              help="Config file (default: $PARLEY_CONFIG, then the user config dir).")
@click.option("--db", "db_url", metavar="URL", help="Database URL (overrides database.url).")
@click.option("--user", "user", metavar="NAME", help="Act as this user (teams on PostgreSQL).")
@click.version_option(VERSION, "--version", prog_name="parley")
@click.pass_context
def cli(ctx: click.Context, config_path: str | None, db_url: str | None,
        user: str | None) -> None:
    """Parley: chat with local or hosted models, search your documents, cite sources.

    \b
    Exit codes: 0 ok, 1 error, 2 usage or configuration error, 130 interrupted.
    Data goes to stdout (use --json where offered), messages to stderr.
    """
    overrides: dict[str, Any] = {}
    if db_url:
        overrides["database"] = {"url": db_url}
    if user:
        overrides["user"] = user
    ctx.obj = AppContext(config_path, overrides)
    if ctx.invoked_subcommand is None:
        from tui.cli.start import start_tui

        start_tui(config_path, overrides)


_registered = False


def _register() -> None:
    global _registered
    if _registered:
        return
    _registered = True
    from tui.cli import (
        ask,
        config,
        db,
        ingest,
        key,
        personas,
        portable,
        search,
        sessions,
        team,
        tools,
        usage,
        watch,
    )

    for module in (db, config, search, sessions, key, ingest, ask, usage, personas, team,
                   tools, watch, portable):
        for command in module.COMMANDS:
            cli.add_command(command)


def main() -> None:
    """Console-script entry point."""
    cli.main(prog_name="parley", standalone_mode=True)


if __name__ == "__main__":
    sys.exit(main())
