"""What every command shares: settings from the global flags, opening the engine, output.

Conventions (documented in the README): data goes to stdout, messages to stderr; ``--json``
prints one JSON document (or one per line for streams); exit codes are 0 ok, 1 error,
2 usage or configuration error, 130 interrupted.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable, Coroutine
from contextlib import asynccontextmanager
from dataclasses import asdict, is_dataclass
from datetime import date, datetime
from functools import wraps
from typing import TYPE_CHECKING, Any, TypeVar

import click

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from engine import Engine, Settings
    from engine.types import SchemaUpgraded

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

T = TypeVar("T")


class AppContext:
    """Global flags, shared by every command through click's context object."""

    def __init__(self, config_path: str | None, overrides: dict[str, Any]) -> None:
        self.config_path = config_path
        self.overrides = overrides
        self._settings: Settings | None = None

    def settings(self, extra: dict[str, Any] | None = None) -> Settings:
        """The effective settings; ``extra`` adds command-specific flag overrides."""
        from engine import load_settings
        from engine.config import _deep_merge

        if extra:
            return load_settings(self.config_path, _deep_merge(self.overrides, extra))
        if self._settings is None:
            self._settings = load_settings(self.config_path, self.overrides)
        return self._settings


def app_context() -> AppContext:
    ctx = click.get_current_context()
    obj = ctx.find_object(AppContext)
    assert obj is not None
    return obj


def fail(message: str, hint: str | None = None, code: int = EXIT_ERROR) -> None:
    """Print one error line (and a hint) on stderr and exit."""
    # One line: scripts that capture stderr get the problem and the fix together.
    click.echo(f"parley: error: {message}" + (f"; {hint}" if hint else ""), err=True)
    sys.exit(code)


def info(message: str) -> None:
    """A message for the user, on stderr (stdout is for data)."""
    click.echo(message, err=True)


def run(coro_fn: Callable[..., Coroutine[Any, Any, T]]) -> Callable[..., T | None]:
    """Run an async command body, turning expected errors into a message and an exit code."""

    @wraps(coro_fn)
    def wrapper(*args: Any, **kwargs: Any) -> T | None:
        from engine.errors import ParleyError

        try:
            return asyncio.run(coro_fn(*args, **kwargs))
        except ParleyError as exc:
            fail(exc.message, exc.hint, exc.exit_code)
        except KeyboardInterrupt:
            click.echo("parley: interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except BrokenPipeError:  # `parley ... | head`: the reader left, nothing to report
            sys.stderr.close()
            sys.exit(EXIT_OK)
        return None

    return wrapper


@asynccontextmanager
async def open_engine(settings: Settings | None = None, *,
                      migrate: bool = True) -> AsyncIterator[Engine]:
    """The engine for this command's settings."""
    from engine import Engine

    async with Engine(settings or app_context().settings(), migrate=migrate) as engine:
        if engine.upgraded is not None:
            info(upgrade_note(engine.upgraded))
        yield engine


def upgrade_note(upgraded: SchemaUpgraded) -> str:
    """One line telling that the embedded database was upgraded, and where the copy is."""
    kept = f"; the previous file is kept as {upgraded.backup}" if upgraded.backup else ""
    return (f"parley: upgraded the database schema from {upgraded.from_revision} to "
            f"{upgraded.to_revision}{kept}")


def to_jsonable(value: Any) -> Any:
    """Dataclasses, datetimes and tuples as plain JSON values."""
    if is_dataclass(value) and not isinstance(value, type):
        return {k: to_jsonable(v) for k, v in asdict(value).items()}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_jsonable(v) for v in value]
    if isinstance(value, datetime | date):
        return value.isoformat()
    return value


def print_json(value: Any, *, compact: bool = False) -> None:
    """One JSON document on stdout."""
    if compact:
        text = json.dumps(to_jsonable(value), ensure_ascii=False, separators=(",", ":"))
    else:
        text = json.dumps(to_jsonable(value), ensure_ascii=False, indent=2)
    click.echo(text)


def json_option(fn: Callable[..., Awaitable[Any]] | Callable[..., Any]) -> Any:
    """The ``--json`` flag, the same on every command that prints data."""
    return click.option("--json", "as_json", is_flag=True,
                        help="Print JSON on stdout instead of text.")(fn)


def parse_pairs(pairs: tuple[str, ...] | list[str]) -> dict[str, str]:
    """``K=V`` options as a dict (the engine checks names and values)."""
    from engine.errors import UsageError

    out: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--param {pair}: expected NAME=VALUE",
                             "e.g. --param temperature=0.2 --param top_k=8")
        out[key.strip()] = value.strip()
    return out


def names_of(values: tuple[str, ...] | list[str] | None) -> list[str]:
    """Names from repeated or comma-separated options (``--collection a,b``)."""
    out: list[str] = []
    for value in values or ():
        out.extend(part.strip() for part in value.split(",") if part.strip())
    return list(dict.fromkeys(out))
