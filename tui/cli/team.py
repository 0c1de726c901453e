"""``parley team`` (the database owner's: members) and ``parley collections share/unshare``."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from tui.cli.common import EXIT_USAGE, fail, info, json_option, open_engine, print_json, run
from tui.cli.ingest import collections_group


@click.group("team")
def team_group() -> None:
    """Members of a PostgreSQL team database (run by the database owner)."""


def _read_password(path: str) -> str:
    try:
        raw = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        fail(f"cannot read the password file {path}: {exc.strerror}", None, EXIT_USAGE)
    password = raw.splitlines()[0] if raw.strip() else ""
    if not password:
        fail(f"the password file {path} is empty", "put the password on its first line",
             EXIT_USAGE)
    return password


@team_group.command("add")
@click.argument("role")
@click.option("--create", is_flag=True, help="Create ROLE as a login role first.")
@click.option("--password-file", metavar="FILE",
              help="With --create: the role's password, on the first line of FILE ('-': stdin). "
                   "Without it the role logs in by peer, certificate or another method your "
                   "pg_hba.conf allows.")
@json_option
@run
async def team_add(role: str, create: bool, password_file: str | None, as_json: bool) -> None:
    """Let ROLE use Parley here: grant it parley_member and create its user."""
    password = _read_password(password_file) if password_file else None
    async with open_engine() as engine:
        member = await engine.team.add(role, create=create, password=password)
    if as_json:
        print_json(member)
    else:
        info(f"added '{member.name}' to the team" + (" (role created)" if create else "")
             + f"; they connect as {member.name} with their own key")


@team_group.command("remove")
@click.argument("role")
@click.option("--purge", is_flag=True,
              help="Also delete every row of ROLE's (sessions, messages, collections, usage).")
@click.option("--yes", "-y", is_flag=True, help="Do not ask before --purge.")
@run
async def team_remove(role: str, purge: bool, yes: bool) -> None:
    """Stop ROLE from using Parley here (the role itself stays)."""
    if purge and not yes:
        if not sys.stdin.isatty():
            fail("--purge deletes all of the member's data: confirm with --yes", None,
                 EXIT_USAGE)
        click.confirm(f"Delete every session, message and collection of '{role}'?",
                      abort=True, err=True)
    async with open_engine() as engine:
        deleted = await engine.team.remove(role, purge=purge)
    info(f"removed '{role}' from the team" + ("; their data is deleted" if deleted else
                                             "; their data stays (--purge deletes it)"))


@team_group.command("list")
@json_option
@run
async def team_list(as_json: bool) -> None:
    """List the team: users and roles holding parley_member."""
    async with open_engine() as engine:
        members = await engine.team.members()
    if as_json:
        print_json({"members": members})
        return
    for item in members:
        flags = [f for f, on in (("owner", item.owner), ("member", item.member and not item.owner),
                                 ("removed", not item.member), ("no login", not item.can_login),
                                 ("no user row yet", item.user_id is None)) if on]
        click.echo(f"{item.name}\t{', '.join(flags)}")


@collections_group.command("share")
@click.argument("name")
@click.option("--with", "with_user", metavar="ROLE", help="The member to share with.")
@click.option("--all", "everyone", is_flag=True, help="Share with every member.")
@click.option("--write", is_flag=True, help="Let them ingest and remove documents too.")
@json_option
@run
async def collections_share(name: str, with_user: str | None, everyone: bool, write: bool,
                            as_json: bool) -> None:
    """Share one of your collections (PostgreSQL teams), read-only unless --write."""
    if bool(with_user) == everyone:
        fail("say who to share with: --with ROLE or --all", None, EXIT_USAGE)
    async with open_engine() as engine:
        share = await engine.team.share(name, with_user=with_user, write=write)
    if as_json:
        print_json(share)
    else:
        info(f"shared '{share.collection}' with {share.with_user or 'every member'} "
             f"({'read and write' if share.write else 'read-only'})")


@collections_group.command("unshare")
@click.argument("name")
@click.option("--with", "with_user", metavar="ROLE", help="Stop sharing with this member only.")
@click.option("--all", "everyone", is_flag=True, help="Stop sharing with anyone.")
@run
async def collections_unshare(name: str, with_user: str | None, everyone: bool) -> None:
    """Stop sharing one of your collections."""
    if bool(with_user) == everyone:
        fail("say whom to stop sharing with: --with ROLE or --all", None, EXIT_USAGE)
    async with open_engine() as engine:
        ended = await engine.team.unshare(name, with_user=with_user)
    info(f"'{name}' is no longer shared with {with_user or 'anyone'}" if ended else
         f"'{name}' was not shared with {with_user or 'anyone'}")


COMMANDS = [team_group]
