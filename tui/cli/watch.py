"""``parley watch``: folders kept in sync with the library (add, list, remove, and run)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from tui.cli.common import info, json_option, open_engine, print_json, run

if TYPE_CHECKING:
    from engine.types import WatchEvent


def describe(event: WatchEvent) -> str:
    """One line for a watch event."""
    where = event.folder or "-"
    if event.state == "synced":
        parts = [f"{event.indexed} indexed"]
        if event.linked:
            parts.append(f"{event.linked} renamed or copied (not embedded again)")
        if event.removed:
            parts.append(f"{event.removed} removed")
        if event.failed:
            parts.append(f"{event.failed} failed (see: parley docs errors)")
        return f"synced {where}: " + ", ".join(parts)
    if event.state == "error":
        return f"error in {where}: {event.detail} (retried on the next change)"
    if event.state == "syncing":
        return f"syncing {where} ({event.changed} changed)"
    return f"watching {where}" if event.folder else "no watched folders: parley watch add PATH"


@click.group("watch", invoke_without_command=True)
@click.option("--once", is_flag=True, help="Sync every watched folder once, then exit.")
@json_option
@click.pass_context
def watch_group(ctx: click.Context, once: bool, as_json: bool) -> None:
    """Keep watched folders in sync: changed files are re-indexed within seconds.

    Without a subcommand, runs in the foreground until Ctrl-C: first catches up with
    what changed while nothing watched, then follows file events (debounced: a burst of
    saves is one re-index; a renamed file keeps its chunks and vectors).
    """
    if ctx.invoked_subcommand is None:
        _watch(once, as_json)


@run
async def _watch(once: bool, as_json: bool) -> None:
    def show(event: WatchEvent) -> None:
        if as_json:
            print_json(event, compact=True)
        else:
            info(describe(event))

    async with open_engine() as engine:
        if not await engine.watched.list():
            info("no watched folders: add one with 'parley watch add PATH'")
            return
        await engine.folder_sync(on_event=show).run(once=once)


@watch_group.command("add")
@click.argument("path", type=click.Path(file_okay=False))
@click.option("--collection", "-c", help="Collection to keep it in (default: the default).")
@click.option("--include", multiple=True, metavar="GLOB", help="Only files matching (repeat).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Skip matches (repeat).")
@click.option("--tag", "tags", multiple=True, help="Tag every document of the folder.")
@click.option("--hidden", is_flag=True, help="Also read hidden files and folders.")
@json_option
@run
async def add(path: str, collection: str | None, include: tuple[str, ...],
              exclude: tuple[str, ...], tags: tuple[str, ...], hidden: bool,
              as_json: bool) -> None:
    """Watch a folder: 'parley watch' (or the app) keeps it in sync with a collection."""
    async with open_engine() as engine:
        folder = await engine.watched.add(path, collection=collection, include=include,
                                          exclude=exclude, tags=tags, hidden=hidden)
    if as_json:
        print_json(folder)
    else:
        info(f"watching {folder.path} for collection '{folder.collection}' (run 'parley "
             "watch' to sync it now and keep it in sync)")


@watch_group.command("list")
@json_option
@run
async def list_folders(as_json: bool) -> None:
    """List watched folders with their last sync."""
    async with open_engine() as engine:
        folders = await engine.watched.list()
    if as_json:
        print_json({"folders": folders})
        return
    if not folders:
        info("no watched folders (add one with: parley watch add PATH)")
        return
    for f in folders:
        synced = f"{f.last_sync_at:%Y-%m-%d %H:%M}" if f.last_sync_at else "never synced"
        extra = "".join([f"  include {','.join(f.include)}" if f.include else "",
                         f"  exclude {','.join(f.exclude)}" if f.exclude else "",
                         f"  [{', '.join(f.tags)}]" if f.tags else "",
                         f"  error: {f.last_error}" if f.last_error else ""])
        click.echo(f"{f.id:>4}  {f.collection}  {f.path}  ({synced}){extra}")


@watch_group.command("remove")
@click.argument("target", metavar="ID|PATH")
@run
async def remove(target: str) -> None:
    """Stop watching a folder (its documents stay indexed; 'parley docs remove' drops them)."""
    async with open_engine() as engine:
        gone = await engine.watched.remove(int(target) if target.isdigit() else target)
    for f in gone:
        info(f"stopped watching {f.path} (collection '{f.collection}')")


COMMANDS = [watch_group]
