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
    keyword, role = asyncio.run(_ask_database(settings))
    if as_json:
        print_json({"config_file": str(path) if path else None,
                    "database_url": settings.database_url(),
                    "database_role": role,
                    "settings": {key: {"value": value, "source": source}
                                 for key, value, source in items},
                    "keyword_search": keyword})
        return
    click.echo(f"# config file: {path or f'(none; looked for {default_config_path()})'}")
    width = max(len(key) for key, _, _ in items)
    for key, value, source in items:
        shown = "null" if value is None else value
        click.echo(f"{key:<{width}}  {shown!s:<40}  [{source}]")
    if role is not None:
        click.echo(f"# database role: {role} (on PostgreSQL you are the role you connect as)")
    click.echo(f"# keyword search: {keyword['method']}: {keyword['detail']}")


async def _ask_database(settings: Any) -> tuple[dict[str, str], str | None]:
    """Which keyword ranking the configured database uses (PostgreSQL may or may not have
    the pg_textsearch index) and, on PostgreSQL, the role the connection logs in as. Never
    fails: an unreachable database says so (role None). The database is opened without
    checking the ``user`` setting against the role, so a mismatch still shows the role."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import DBAPIError

    from engine.db.connect import Database, create_engine, is_driver_error, mask_url
    from engine.db.pg_textsearch import keyword_search_info
    from engine.errors import ConnectionLost, ParleyError
    from engine.teams.identity import session_role

    url = settings.database_url()
    if make_url(url).get_backend_name() == "sqlite":
        # known without opening (opening would create the file)
        return {"method": "fts5", "detail": "SQLite FTS5 with its bm25() ranking"}, None

    async def ask() -> tuple[dict[str, str], str | None]:
        db = Database(create_engine(url, pool_size=1))
        try:
            found = await keyword_search_info(
                db, enabled=settings.retrieval.bm25_index == "auto")
            role = await session_role(db)
        finally:
            await db.dispose()
        return {"method": found.method, "detail": found.detail}, role

    try:  # showing the configuration must not hang on a server that does not answer
        return await asyncio.wait_for(ask(), ASK_TIMEOUT_S)
    except TimeoutError:
        return {"method": "unknown", "detail": "cannot ask the database: no answer within "
                f"{ASK_TIMEOUT_S:g} s"}, None
    except Exception as exc:
        if not (isinstance(exc, ParleyError | DBAPIError | OSError) or is_driver_error(exc)):
            raise
        if isinstance(exc, ParleyError) and not isinstance(exc, ConnectionLost):
            return {"method": "unknown", "detail": f"cannot ask the database: {exc}"}, None
        cause = exc.__cause__ if isinstance(exc, ConnectionLost) and exc.__cause__ else exc
        detail = str(getattr(cause, "orig", None) or cause).strip().splitlines()[0]
        return {"method": "unknown", "detail": "cannot ask the database: cannot connect to "
                f"database {mask_url(url)}: {detail}"}, None


ASK_TIMEOUT_S = 10.0


COMMANDS = [config_group]
