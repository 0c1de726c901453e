"""``parley db copy``, ``parley db check``, ``parley backup`` and ``parley restore``
(the engine side is ``engine/portable``)."""

from __future__ import annotations

import sys
import time
from typing import TYPE_CHECKING, Any

import click

from tui.cli.common import app_context, fail, info, json_option, print_json, run
from tui.cli.db import db_group

if TYPE_CHECKING:
    from engine.portable.results import CopyReport


class Progress:
    """One self-overwriting line on a terminal (nothing when stderr is not a terminal)."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.last = 0.0
        self.started = time.perf_counter()

    def __call__(self, table: str, done: int, total: int) -> None:
        if not self.tty:
            return
        now = time.perf_counter()
        if done < total and now - self.last < 0.2:
            return
        self.last = now
        if table.startswith("("):  # a phase: building indexes, verifying
            step = {"(indexes)": "building vector indexes", "(verify)": "verifying tables"}
            click.echo(f"\r\033[K{step.get(table, table)}: {done}/{total}", err=True, nl=False)
            return
        rate = done / max(now - self.started, 1e-6)
        click.echo(f"\r\033[Kcopying {table}: {done:,}/{total:,} rows ({rate:,.0f} rows/s)",
                   err=True, nl=False)

    def close(self) -> None:
        if self.tty:
            click.echo("\r\033[K", err=True, nl=False)


def print_report(report: CopyReport, *, verified: bool = True) -> None:
    width = max(len(t.table) for t in report.tables)
    head = "would copy" if report.dry_run else "copied"
    click.echo(f"{'table':<{width}}  {'source':>9}  {head:>10}  {'skipped':>8}  check")
    for t in report.tables:
        check = "" if t.target_rows is None else ("ok" if t.ok else
                                                 f"DIFFERS ({t.target_rows} on target)")
        copied = t.source_rows if report.dry_run else t.copied
        click.echo(f"{t.table:<{width}}  {t.source_rows:>9,}  {copied:>10,}  {t.skipped:>8,}  "
                   f"{check}")


def _url_or_current(url: str | None) -> str:
    return url or app_context().settings().database_url()


@db_group.command("copy")
@click.option("--to", "to_url", metavar="URL", help="Copy the current database into URL.")
@click.option("--from", "from_url", metavar="URL", help="Copy URL into the current database.")
@click.option("--merge", is_flag=True,
              help="The target already holds some of this data: skip what is there.")
@click.option("--dry-run", is_flag=True, help="Print what would be copied; change nothing.")
@click.option("--only-user", "users", multiple=True, metavar="NAME",
              help="Copy only this user's data (repeatable; default: every user).")
@click.option("--batch", type=click.IntRange(10, 100_000), default=1000, show_default=True,
              help="Rows per transaction.")
@json_option
@run
async def copy(to_url: str | None, from_url: str | None, merge: bool, dry_run: bool,
               users: tuple[str, ...], batch: int, as_json: bool) -> None:
    """Copy every table between SQLite and PostgreSQL (either way), resumably and verified.

    \b
    Encrypted values travel as their tokens (no key needed, nothing decrypted); vectors
    as float32 (no re-embedding); the target's vector and keyword indexes are built.
    Interrupted, the same command resumes where it stopped.
    """
    from engine.portable.copier import Copier
    from engine.portable.results import VerificationFailed

    if bool(to_url) == bool(from_url):
        fail("name exactly one of --to URL or --from URL", code=2)
    current = app_context().settings().database_url()
    source, target = (current, to_url) if to_url else (from_url, current)
    assert source is not None and target is not None
    progress = Progress()
    try:
        settings = app_context().settings()
        # settings.user is not resolved to the PostgreSQL role here: it is the name an
        # SQLite file opens as with this configuration (your own data lands on it)
        report = await Copier(source, target, merge=merge, dry_run=dry_run,
                              users=users or None, batch=batch, progress=progress,
                              settings=settings, local_user=settings.user).run()
    except VerificationFailed as exc:
        progress.close()
        if getattr(exc, "report", None) is not None and not as_json:
            print_report(exc.report)  # type: ignore[attr-defined]
        raise
    finally:
        progress.close()
    _show_copy(report, as_json)


def _show_copy(report: CopyReport, as_json: bool) -> None:
    if as_json:
        data: dict[str, Any] = {
            "copy_id": report.copy_id, "source": report.source, "target": report.target,
            "dry_run": report.dry_run, "resumed": report.resumed, "merged": report.merged,
            "created_schema": report.created_schema, "ids_shifted": report.ids_shifted,
            "seconds": round(report.seconds, 3), "new_rows": report.new_rows,
            "phases": {k: round(v, 3) for k, v in report.phases.items()},
            "scope": report.scope, "renamed_users": report.renamed,
            "tables": [{"table": t.table, "source_rows": t.source_rows, "copied": t.copied,
                        "skipped": t.skipped, "target_rows": t.target_rows,
                        "digest": t.source_digest, "ok": t.ok} for t in report.tables]}
        print_json(data)
        return
    print_report(report)
    if report.dry_run:
        info(f"source: {report.scope}")
        schema = " (the target's schema would be created)" if report.created_schema else ""
        info(f"dry run: nothing written to {report.target}{schema}")
        return
    shifted = ", ".join(f"{k} +{v}" for k, v in report.ids_shifted.items())
    info(f"source: {report.scope}")
    into_file = report.target.startswith("sqlite")
    for old, new in report.renamed.items():
        info(f"user '{old}' lands on '{new}' " + (
            "(this file's user: it opens as you, with your key)" if into_file
            else "(the role you connect as)"))
    if into_file and report.source.startswith("postgresql") and not report.renamed:
        info("users keep their role names there: open it as one of them with "
             "parley --db FILE --user NAME")
    if report.resumed and report.new_rows == 0:
        info(f"{report.target} already holds this copy: nothing new to copy; every table "
             "verified")
        return
    info(f"copied {report.new_rows:,} rows from {report.source} to {report.target} in "
         f"{report.seconds:.1f}s; every table verified"
         + (" (resumed)" if report.resumed else "")
         + (f"; ids shifted: {shifted}" if shifted else "; ids kept"))



def _passphrase(prompt: bool, env_name: str | None, *, confirm: bool) -> str | None:
    import os

    if env_name:
        value = os.environ.get(env_name)
        if not value:
            fail(f"${env_name} is not set", "export the passphrase in it, or use --passphrase",
                 code=2)
        return value
    if prompt:
        return click.prompt("Passphrase", hide_input=True, confirmation_prompt=confirm,
                            err=True)
    return None


def _passphrase_options(fn: Any) -> Any:
    fn = click.option("--passphrase-env", metavar="VAR",
                      help="Take the passphrase from this environment variable.")(fn)
    return click.option("--passphrase", "ask_passphrase", is_flag=True,
                        help="Seal/open with a passphrase (asked on the terminal).")(fn)


@click.command("backup")
@click.argument("path", required=False, type=click.Path(path_type=str))
@click.option("--encrypt", is_flag=True,
              help="Seal the archive (AES-256-GCM) with your Parley key, or with a passphrase "
                   "given by --passphrase / --passphrase-env.")
@_passphrase_options
@click.option("--only-user", "users", multiple=True, metavar="NAME",
              help="Back up only this user's data (repeatable; default: everything).")
@json_option
@run
async def backup(path: str | None, encrypt: bool, ask_passphrase: bool,
                 passphrase_env: str | None, users: tuple[str, ...], as_json: bool) -> None:
    """Write a consistent, checksummed backup archive of the database (PATH: a file or a
    folder; default: the data folder's backups/). Safe while Parley is running."""
    from pathlib import Path

    from engine.config import data_dir
    from engine.portable import backup as bk
    from tui.cli.main import VERSION

    settings = app_context().settings()
    url = settings.database_url()
    passphrase = _passphrase(ask_passphrase, passphrase_env, confirm=True)
    target = Path(path).expanduser() if path else data_dir() / "backups"
    if target.is_dir() or not path:
        target = bk.default_path(target)
    seal = await bk.seal_for(url, settings, passphrase) if (encrypt or passphrase) else None
    progress = Progress()
    try:
        result = await bk.backup(url, target, seal=seal, settings=settings,
                                 parley_version=VERSION, progress=progress,
                                 users=list(users) or None)
    finally:
        progress.close()
    await bk.record_backup(url, result, settings.user)
    if as_json:
        print_json(result)
        return
    click.echo(result.path)
    sealed = " sealed with a passphrase" if passphrase else (" sealed with your key"
                                                               if seal else "")
    info(f"backed up {sum(result.rows.values()):,} rows (schema {result.revision}) to "
         f"{result.path}{sealed}: {result.size:,} bytes in {result.seconds:.1f}s; "
         f"sha256 of the database {result.sha256[:16]}...")


@click.command("restore")
@click.argument("path", type=click.Path(path_type=str))
@click.option("--to", "to_url", metavar="URL",
              help="Restore into this database (default: the configured one).")
@click.option("--merge", is_flag=True,
              help="The target already holds Parley data: add only what is missing.")
@_passphrase_options
@json_option
@run
async def restore(path: str, to_url: str | None, merge: bool, ask_passphrase: bool,
                  passphrase_env: str | None, as_json: bool) -> None:
    """Check a backup archive end to end, then restore it and verify the result.

    A truncated, altered or wrongly-keyed archive is refused and nothing is written."""
    from pathlib import Path

    from engine.portable import backup as bk
    from engine.portable.restore import restore as do_restore
    from engine.portable.sealed import is_sealed

    settings = app_context().settings()
    archive = Path(path).expanduser()
    passphrase = _passphrase(ask_passphrase, passphrase_env, confirm=False)
    if passphrase is None and archive.is_file() and is_sealed(archive) \
            and sys.stdin.isatty() and _sealed_mode(archive) == "passphrase":
        passphrase = _passphrase(True, None, confirm=False)
    progress = Progress()
    try:
        result = await do_restore(archive, _url_or_current(to_url), merge=merge,
                                  key_for=bk.opener(settings, passphrase), settings=settings,
                                  progress=progress)
    finally:
        progress.close()
    if as_json:
        print_json({"archive": result.archive, "target": result.target,
                    "revision": result.revision, "whole_file": result.whole_file,
                    "seconds": round(result.seconds, 3),
                    "tables": None if result.report is None else
                    {t.table: t.target_rows for t in result.report.tables}})
        return
    if result.report is not None:
        print_report(result.report)
        info(f"restored {result.report.new_rows:,} rows into {result.target}; every table "
             f"verified ({result.seconds:.1f}s)")
    else:
        info(f"restored {result.archive} as {result.target} (the database file itself, "
             f"checksum verified, {result.seconds:.1f}s)")


def _sealed_mode(archive: Any) -> str | None:
    from engine.portable.sealed import read_header

    with open(archive, "rb") as raw:
        try:
            return str(read_header(raw)[0].get("mode"))
        except Exception:
            return None


COMMANDS = [backup, restore]


@db_group.command("check")
@click.option("--repair", is_flag=True,
              help="Rebuild the keyword and vector indexes and clear dangling references "
                   "(never touches history or documents).")
@json_option
@run
async def check(repair: bool, as_json: bool) -> None:
    """Check the database: integrity, search indexes against the data, references, key.

    Exits 1 when a problem is found, naming it and the command that repairs it."""
    from engine.db.connect import sqlite_path
    from engine.portable import check as chk
    from engine.portable.access import open_database
    from engine.portable.target import key_candidates

    settings = app_context().settings()
    missing = sqlite_path(settings.database_url())
    if missing is not None and not missing.exists():
        fail(f"there is no database at {missing}", "check database.url or --db")
    db = open_database(settings.database_url())
    try:
        done = await chk.repair(db) if repair else []
        report = await chk.check(db, key_candidates(settings), settings.user)
    finally:
        await db.dispose()
    if as_json:
        print_json({**chk.as_dict(report), "repaired": done})
    else:
        for line in done:
            info(f"repair: {line}")
        click.echo(f"scope: {report.scope}")
        for name in report.checks:
            click.echo(f"checked: {name}")
        for p in report.problems:
            click.echo(f"PROBLEM {p.check}: {p.detail} -> {p.repair}")
    if not report.ok:
        first = report.problems[0]
        more = f" (and {len(report.problems) - 1} more)" if len(report.problems) > 1 else ""
        fail(f"{first.check}: {first.detail}{more}", first.repair)
    if not as_json:
        info(f"{report.url}: every check passed")
