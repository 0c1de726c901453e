"""``parley personas``: named chat presets (list, show, save from a session, delete).

Personas come from the config file (``personas:``) or are saved from a session into the
database. ``parley ask --persona NAME`` starts a new session from one; in the app, Ctrl+N
offers them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tui.cli.common import fail, info, json_option, open_engine, print_json, run

if TYPE_CHECKING:
    from engine.types import PersonaInfo


@click.group("personas")
def personas_group() -> None:
    """Named chat presets: list, show, save from a session, delete."""


def _summary(p: PersonaInfo) -> str:
    model = "/".join(x for x in (p.provider, p.model) if x) or "configured model"
    scope = ", ".join(p.collections) or "all collections"
    tools = "" if p.tools is None else f" · tools: {', '.join(p.tools) or 'none'}"
    return f"{model} · {scope}{tools}" + (f" · {p.description}" if p.description else "")


def _tools(p: PersonaInfo, enabled: bool) -> str:
    from engine.tools.selection import describe

    return describe(p.tools, enabled)


@personas_group.command("list")
@json_option
@run
async def list_personas(as_json: bool) -> None:
    """List personas: those of the config file and those saved from sessions."""
    async with open_engine() as engine:
        personas = await engine.personas.list()
    if as_json:
        print_json(personas)
        return
    if not personas:
        info("no personas yet: add some under personas: in the config file, or save one with "
             "'parley personas save NAME --from-session ID'")
        return
    for p in personas:
        click.echo(f"{p.name:20}  {p.origin:6}  {_summary(p)}")


@personas_group.command("show")
@click.argument("name")
@json_option
@run
async def show(name: str, as_json: bool) -> None:
    """Show persona NAME: every setting it gives a new chat."""
    async with open_engine() as engine:
        p = await engine.personas.get(name)
    if as_json:
        print_json(p)
        return
    click.echo(f"# {p.name} ({'config file' if p.origin == 'config' else 'saved'})")
    if p.description:
        click.echo(p.description)
    rows = [("provider", p.provider or "(configured)"), ("model", p.model or "(configured)"),
            ("collections", ", ".join(p.collections) or "all"),
            ("rag", "(configured)" if p.rag is None else ("on" if p.rag else "off")),
            ("tools", _tools(p, engine.settings.tools.enabled))]
    rows += [(k.replace("_", " "), v) for k, v in p.params.items()]
    for key, value in rows:
        click.echo(f"{key}: {value}")
    if p.system_prompt:
        click.echo("system prompt:\n    " + p.system_prompt.strip().replace("\n", "\n    "))
    if p.first_message:
        click.echo(f"first message: {p.first_message}")


@personas_group.command("save")
@click.argument("name")
@click.option("--from-session", "session_id", type=int, required=True, metavar="ID",
              help="The session whose settings the persona keeps.")
@click.option("--replace", is_flag=True, help="Overwrite a saved persona of that name.")
@run
async def save(name: str, session_id: int, replace: bool) -> None:
    """Save the settings of a session (model, prompt, collections, parameters, tools) as
    persona NAME (kept in the database)."""
    async with open_engine() as engine:
        p = await engine.personas.save_from_session(name, session_id, replace=replace)
    info(f"saved persona '{p.name}': {_summary(p)}; use it with: parley ask --persona {p.name}")


@personas_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@run
async def delete(name: str, yes: bool) -> None:
    """Delete saved persona NAME (chats started from it keep their settings)."""
    async with open_engine() as engine:
        await engine.personas.get(name)
        if not yes and not click.confirm(f"Delete persona '{name}'?", err=True):
            fail("not deleted", "pass --yes to delete without asking")
            return
        await engine.personas.delete(name)
    info(f"deleted persona '{name}'")


COMMANDS = [personas_group]
