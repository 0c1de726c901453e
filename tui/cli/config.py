"""``parley config``: the effective settings and where each came from."""

from __future__ import annotations

import click

from tui.cli.common import app_context, json_option, print_json


@click.group("config")
def config_group() -> None:
    """Configuration: show the effective settings."""


@config_group.command("show")
@json_option
def show(as_json: bool) -> None:
    """Print every setting, its value (secrets masked) and its source."""
    from engine.config import default_config_path, effective_items
    from engine.errors import ParleyError
    from tui.cli.common import fail

    try:
        settings = app_context().settings()
    except ParleyError as exc:
        fail(exc.message, exc.hint, exc.exit_code)
        return
    items = effective_items(settings)
    path = settings.config_path
    if as_json:
        print_json({"config_file": str(path) if path else None,
                    "database_url": settings.database_url(),
                    "settings": {key: {"value": value, "source": source}
                                 for key, value, source in items}})
        return
    click.echo(f"# config file: {path or f'(none; looked for {default_config_path()})'}")
    width = max(len(key) for key, _, _ in items)
    for key, value, source in items:
        shown = "null" if value is None else value
        click.echo(f"{key:<{width}}  {shown!s:<40}  [{source}]")


COMMANDS = [config_group]
