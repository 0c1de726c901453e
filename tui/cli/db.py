"""``parley db``: schema status and migrations."""

from __future__ import annotations

import click

from tui.cli.common import info, json_option, open_engine, print_json, run, to_jsonable


@click.group("db")
def db_group() -> None:
    """Database schema: status and migrations."""


@db_group.command("current")
@json_option
@run
async def current(as_json: bool) -> None:
    """Show the applied and expected schema revision."""
    async with open_engine(migrate=False) as engine:
        state = await engine.schema_status()
        keyword = await engine.keyword_search()
        role = await engine.database_role()
        user = engine.settings.user
    if as_json:
        print_json({**to_jsonable(state), "role": role, "user": user,
                    "keyword_search": keyword})
        return
    who = f"{role} (the database role you connect as)" if role else \
        f"{user} (the user setting: SQLite has one user)"
    click.echo(f"backend:  {state.backend}\nurl:      {state.url}\nuser:     {who}\n"
               f"current:  {state.current or '(empty)'}\nhead:     {state.head}\n"
               f"status:   {'up to date' if state.up_to_date else 'needs: parley db upgrade'}\n"
               f"keyword:  {keyword.detail}")


@db_group.command("upgrade")
@click.argument("revision", default="head")
@json_option
@run
async def upgrade(revision: str, as_json: bool) -> None:
    """Apply migrations up to REVISION (default: head). SQLite files are backed up first."""
    async with open_engine(migrate=False) as engine:
        before = await engine.schema_status()
        state = await engine.upgrade(revision)
        keyword = await engine.keyword_search()
    if as_json:
        print_json({"from": before.current, "to": state.current, "backend": state.backend,
                    "keyword_search": keyword})
    else:
        info(f"schema {before.current or '(empty)'} -> {state.current} on {state.url}")
        info(f"keyword search: {keyword.detail}")


@db_group.command("downgrade")
@click.argument("revision")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@run
async def downgrade(revision: str, yes: bool) -> None:
    """Revert migrations down to REVISION ('base' removes every table and all data)."""
    if not yes and not click.confirm(f"Downgrade the schema to {revision}? This can delete data",
                                     err=True):
        raise click.Abort()
    async with open_engine(migrate=False) as engine:
        state = await engine.downgrade(revision)
    info(f"schema now at {state.current or '(empty)'} on {state.url}")


COMMANDS = [db_group]
