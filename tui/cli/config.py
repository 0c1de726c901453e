"""``parley config``: the effective settings and where each came from."""

from __future__ import annotations

import asyncio
from typing import Any

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
    keyword = asyncio.run(_keyword_search(settings))
    if as_json:
        print_json({"config_file": str(path) if path else None,
                    "database_url": settings.database_url(),
                    "settings": {key: {"value": value, "source": source}
                                 for key, value, source in items},
                    "keyword_search": keyword})
        return
    click.echo(f"# config file: {path or f'(none; looked for {default_config_path()})'}")
    width = max(len(key) for key, _, _ in items)
    for key, value, source in items:
        shown = "null" if value is None else value
        click.echo(f"{key:<{width}}  {shown!s:<40}  [{source}]")
    click.echo(f"# keyword search: {keyword['method']}: {keyword['detail']}")


async def _keyword_search(settings: Any) -> dict[str, str]:
    """Which keyword ranking the configured database uses (it is asked: PostgreSQL may or
    may not have the pg_textsearch index). Never fails: an unreachable database says so."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from engine import Engine
    from engine.errors import ParleyError

    if make_url(settings.database_url()).get_backend_name() == "sqlite":
        # known without opening (opening would create the file)
        return {"method": "fts5", "detail": "SQLite FTS5 with its bm25() ranking"}
    async def ask() -> dict[str, str]:
        async with Engine(settings, migrate=False) as engine:
            found = await engine.keyword_search()
        return {"method": found.method, "detail": found.detail}

    try:  # showing the configuration must not hang on a server that does not answer
        return await asyncio.wait_for(ask(), ASK_TIMEOUT_S)
    except TimeoutError:
        return {"method": "unknown",
                "detail": f"cannot ask the database: no answer within {ASK_TIMEOUT_S:g} s"}
    except (ParleyError, DBAPIError, OSError) as exc:
        return {"method": "unknown", "detail": f"cannot ask the database: {exc}"}


ASK_TIMEOUT_S = 10.0


COMMANDS = [config_group]
