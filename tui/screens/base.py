"""What every Parley screen shares: the status bar and footer, the engine, guarded workers.

Engine calls run only in async workers made by ``engine_task``: exclusive per group (a new
search cancels the running one), and never fatal. An expected error (``ParleyError``)
becomes a notification, anything else opens the error dialog; either way the app keeps
running. A worker that must put state back (the prompt text) catches, restores and
re-raises.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

from textual import work
from textual.app import ComposeResult
from textual.screen import Screen
from textual.widget import Widget
from tui.widgets.footer import Footer
from tui.widgets.status import StatusBar

if TYPE_CHECKING:
    from engine import Engine
    from tui.app import ParleyApp

F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def engine_task(group: str, *, exclusive: bool = True) -> Callable[[F], Callable[..., Any]]:
    """Run an async screen method as a worker whose errors are reported, never raised.

    The decorated method returns the ``Worker`` (call it, or await ``worker.wait()``).
    """

    def decorate(method: F) -> Callable[..., Any]:
        @functools.wraps(method)
        async def guarded(self: Widget, *args: Any, **kwargs: Any) -> Any:
            try:
                return await method(self, *args, **kwargs)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # reported to the user: the app must never crash here
                app: ParleyApp = self.app  # type: ignore[assignment]
                app.report(exc)
                return None

        return work(guarded, group=group, exclusive=exclusive, exit_on_error=False)

    return decorate


class ParleyScreen(Screen[None]):
    """A top-level section (chat, search, library, usage) with the status bar and footer."""

    MODE: ClassVar[str] = ""
    """The app mode this screen is shown in (the status bar highlights its tab)."""

    @property
    def parley(self) -> ParleyApp:
        """The app, typed."""
        return self.app  # type: ignore[return-value]

    async def engine(self) -> Engine:
        """The open engine, waiting for it while it opens (raises if it could not open)."""
        return await self.parley.ready_engine()

    def compose(self) -> ComposeResult:
        yield StatusBar(self.MODE)
        yield from self.compose_body()
        yield Footer()

    def compose_body(self) -> Iterable[Widget]:
        """The widgets between the status bar and the footer."""
        return ()
