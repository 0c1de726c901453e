"""``parley key``: which key opens the database, and rotating it."""

from __future__ import annotations

import asyncio
import sys
from typing import TYPE_CHECKING, Any

import click

from tui.cli.common import info, json_option, open_engine, print_json, run

if TYPE_CHECKING:
    from engine.types import KeyStatus, RotationProgress


@click.group("key")
def key_group() -> None:
    """The encryption key of the chat history: status and rotation."""


def _print_status(status: KeyStatus) -> None:
    rows = [("key", status.source or "(none found)"),
            ("key file", f"{status.key_file}" + ("" if status.key_file_exists else " (absent)")),
            ("opens database", "yes" if status.matches else f"no: {status.problem}"),
            ("encrypted", f"{status.encrypted_values} values in "
                          f"{', '.join(status.encrypted_columns)}")]
    if status.last_rotated_at is not None:
        rows.append(("last rotated", f"{status.last_rotated_at:%Y-%m-%d %H:%M} UTC"))
    rotation = status.rotation
    if rotation is None:
        rows.append(("rotation", "none unfinished"))
    else:
        rows.append(("rotation", f"UNFINISHED since {rotation.started_at:%Y-%m-%d %H:%M} UTC: "
                                 f"{rotation.phase} {rotation.done}/{rotation.total} rows, new key "
                                 f"in {rotation.new_key_location}; finish it: parley key rotate"))
    for name, value in rows:
        click.echo(f"{name + ':':16}{value}")


@key_group.command("status")
@json_option
@run
async def status(as_json: bool) -> None:
    """Show where the key comes from, whether it opens the database, and any unfinished
    rotation. Exits with 1 when the key does not open the database."""
    async with open_engine(migrate=False) as engine:
        result = await engine.keys.status()
    if as_json:
        print_json(result)
    else:
        _print_status(result)
    if not result.matches:
        sys.exit(1)


class _Bar:
    """A progress bar per phase on a terminal's stderr; nothing when stderr is not one."""

    LABELS = {"rotate": "re-encrypting", "verify": "verifying    "}

    def __init__(self) -> None:
        self.enabled = sys.stderr.isatty()
        self.phase: str | None = None
        self.bar: Any = None
        self.done = 0

    def __call__(self, event: RotationProgress) -> None:
        if not self.enabled:
            return
        if event.phase != self.phase:
            self.close()
            self.phase, self.done = event.phase, 0
            self.bar = click.progressbar(length=max(event.total, 1), file=sys.stderr,
                                         label=self.LABELS.get(event.phase, event.phase))
            self.bar.__enter__()
        self.bar.update(event.done - self.done)
        self.done = event.done

    def close(self) -> None:
        if self.bar is not None:
            self.bar.__exit__(None, None, None)
            self.bar = None


@key_group.command("rotate")
@click.option("--new-key-env", metavar="NAME",
              help="Take the new key or passphrase from this environment variable (needed when "
                   "the current key comes from the environment).")
@json_option
@run
async def rotate(new_key_env: str | None, as_json: bool) -> None:
    """Re-encrypt every encrypted value under a new key, then retire the old key.

    \b
    With a key file, a new key is generated into it. Runs in batches, each its own
    transaction: after a crash or Ctrl-C, run it again to resume. Close other Parley
    processes first: one still running with the old key alone could not read new values.
    """
    bar = _Bar()
    async with open_engine() as engine:
        try:
            result = await engine.keys.rotate(new_key_env=new_key_env, on_progress=bar)
        except asyncio.CancelledError:
            bar.close()
            info("parley: rotation paused; run 'parley key rotate"
                 + (f" --new-key-env {new_key_env}" if new_key_env else "") + "' to resume")
            raise
        finally:
            bar.close()
    if as_json:
        print_json(result)
    info(f"re-encrypted {result.rewritten} values in {result.seconds:.1f} s"
         + (" (resumed)" if result.resumed else "") + "; the old key is retired")
    if result.unreadable:
        info(f"parley: warning: {result.unreadable} value(s) could not be decrypted by any key "
             "and were left as they were")
    if result.new_key_location == "key file":
        info("the key file now holds the new key: back it up again (an old backup no longer "
             "opens this database)")
    else:
        env = engine.settings.crypto.key_env
        info(f"now put the new key in ${env} (the value of {result.new_key_location}); "
             "the old one no longer opens this database")


COMMANDS = [key_group]
