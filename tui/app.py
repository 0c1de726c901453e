"""``ParleyApp``: the Textual app. It wires screens, the engine and error reporting.

The first screen paints before the engine opens: opening (connecting, migrating the
embedded database, checking the key) runs in a worker after mount, and screens wait for it
in their own workers (``ready_engine``). Started by ``parley``, it may also paint before the
configuration is validated (``settle``): that runs right after the first frame, before any
key is handled, and a broken configuration ends the app (``config_error``). Screens do the
work; this module only connects them.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

from textual import work
from textual.app import App
from textual.binding import Binding, BindingType
from textual.reactive import reactive

from engine.errors import ParleyError
from tui.keys import keymap, keys_for
from tui.screens.chat import ChatScreen
from tui.stylesheet import KeptStylesheet
from tui.ui_state import load_state, remember
from tui.widgets.status import StatusInfo, model_status

if TYPE_CHECKING:
    from rich.console import RenderableType
    from textual.command import Provider
    from textual.screen import Screen

    from engine import Engine, Settings
    from engine.config.early import EarlySettings
    from engine.types import WatchEvent
    from tui.open_source import SourceOpener

STYLES = Path(__file__).parent / "styles"
QUIT_WAIT = 10.0  # seconds a quit waits for workers still storing their results


async def _settled(waiting: Awaitable[object]) -> None:
    """Wait for a worker to end, however it ends (its errors were reported already)."""
    with contextlib.suppress(Exception, asyncio.CancelledError):
        await waiting


def _commands() -> type[Provider]:
    """Parley's palette entries, imported when the palette first opens."""
    from tui.commands import ParleyCommands

    return ParleyCommands


def _later(module: str, name: str) -> Callable[[], Screen[None]]:
    """A screen imported when first shown: only the chat screen is needed for first paint."""

    def make() -> Screen[None]:
        return getattr(importlib.import_module(module), name)()  # type: ignore[no-any-return]

    return make


class ParleyApp(App[None]):
    """Chat, sources, library, search and usage in one terminal app."""

    TITLE = "Parley"
    CSS_PATH = [STYLES / name for name in ("app.tcss", "chat.tcss", "library.tcss",
                                           "search.tcss", "usage.tcss", "dialogs.tcss")]
    MODES = {"chat": ChatScreen, "search": _later("tui.screens.search", "SearchScreen"),
             "library": _later("tui.screens.library", "LibraryScreen"),
             "usage": _later("tui.screens.usage", "UsageScreen")}
    DEFAULT_MODE = "chat"
    COMMANDS = App.COMMANDS | {_commands}
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f1", "help", "Help", id="app.help"),
        Binding("f2", "switch_mode('chat')", "Chat", show=False, id="app.chat"),
        Binding("f3", "switch_mode('search')", "Search", show=False, id="app.search"),
        Binding("f4", "switch_mode('library')", "Library", show=False,
                id="app.library"),
        Binding("f5", "switch_mode('usage')", "Usage", show=False, id="app.usage"),
        Binding("ctrl+q", "quit", "Quit", priority=True, id="app.quit"),
        # "palette" is the footer's word for it (Textual's); the help screen says more
        Binding("ctrl+p", "command_palette", "palette", show=False, priority=True,
                id="app.command_palette"),
    ]

    status: reactive[StatusInfo] = reactive(StatusInfo, init=False)
    _theme_applied = False  # a class default: App.__init__ already sets the theme

    def __init__(self, settings: Settings | EarlySettings, *, opener: SourceOpener | None = None,
                 settle: Callable[[], Settings] | None = None, resume_gc: bool = False) -> None:
        """``settle``: when ``settings`` are the first frame's (``read_early``), what
        validates the whole configuration right after that frame. ``resume_gc``: the
        cyclic garbage collector was paused for the start-up (``tui.cli.start``); it
        resumes after the first frame."""
        super().__init__()
        self.settings: Settings = settings  # type: ignore[assignment]  # settled at once
        self._settle = settle
        self._resume_gc = resume_gc
        self.config_error: ParleyError | None = None
        self._opener = opener
        self.engine: Engine | None = None
        self.folder_news: WatchEvent | None = None  # the folder watcher's last news
        self.folder_count = 0
        self._engine_opened = asyncio.Event()
        self._engine_error: BaseException | None = None
        self.set_keymap(keymap(settings))  # ui.keys and ui.enter_sends (see tui.keys)
        # the footer finds the palette's binding by this key
        self.COMMAND_PALETTE_BINDING = keys_for(self, "app.command_palette", "ctrl+p")[0]
        # The theme is set before the stylesheet is made, so the CSS is parsed once, with
        # its variables (set on mount, it was parsed with the default theme's first).
        self._unknown_theme = self._apply_theme()
        self.stylesheet = KeptStylesheet(variables=self.get_css_variables(), keep=True)

    def _display(self, screen: Screen[object], renderable: RenderableType | None) -> None:
        # Textual draws frames during a batch update (the whole start-up is one) and drops
        # them, yet its compositor counts what they drew as shown: the first frame written
        # after the batch was a partial one without the inputs, and a complete screen came
        # only with the next full repaint (a tenth of the first paint later). A frame
        # dropped here makes the next one full.
        if renderable is not None and self._batch_count:
            screen._compositor._dirty_regions.add(screen.size.region)
        super()._display(screen, renderable)

    @property
    def opener(self) -> SourceOpener:
        """What opens a cited source (made when first used: not needed for first paint)."""
        if self._opener is None:
            from tui.open_source import SourceOpener

            self._opener = SourceOpener(self.settings.ui.editor)
        return self._opener

    def on_mount(self) -> None:
        if self._unknown_theme:
            self.notify(f"Unknown theme '{self._unknown_theme}': using {self.theme}",
                        severity="warning")
        if self._settle is None:
            self.set_model(None, None, 0, False)
        self.call_after_refresh(self.after_first_frame)

    def after_first_frame(self) -> None:
        """Validate the configuration (if the first frame was drawn before that), then open
        the engine. The validation runs here, on the app's own loop, not in a worker: it is
        over before the app handles anything but the first frame's keys (which use only
        ``ui``, read exactly as validated), and a broken configuration ends the app before
        the engine opens (``tui.cli.start`` prints the error and exits 2)."""
        if isinstance(self.stylesheet, KeptStylesheet) and self.stylesheet.cache is not None:
            self.stylesheet.cache.save()  # the rules the first frame parsed, for next time
        if self._resume_gc:
            self._resume_gc = False
            gc.freeze()  # what start-up built lives on: later collections skip it
            gc.enable()
        if self._settle is not None:
            settle, self._settle = self._settle, None
            try:
                self.settings = settle()
            except ParleyError as exc:
                self.config_error = exc
                self.exit(return_code=exc.exit_code)
                return
            self.set_model(None, None, 0, False)
        self.open_engine()

    def _apply_theme(self) -> str:
        """The configured theme, else the one last picked in the app, else the default.
        Returns the configured name when no theme has it, else ""."""
        theme = self.settings.ui.theme
        if not self._theme_configured:
            remembered = load_state().get("theme")
            if isinstance(remembered, str) and remembered in self.available_themes:
                theme = remembered
        unknown = ""
        if theme in self.available_themes:
            self.theme = theme
        else:
            unknown = theme
        self._theme_applied = True
        return unknown

    @property
    def _theme_configured(self) -> bool:
        """``ui.theme`` was set (file, environment or flag): it wins over a remembered one."""
        return self.settings.sources.get("ui.theme", "default") != "default"

    def watch_theme(self, theme: str) -> None:
        if not self._theme_applied:
            return  # the initial theme, not a choice
        try:
            remember("theme", theme)
        except OSError as exc:
            self.notify(f"The theme could not be remembered: {exc}", severity="warning")
            return
        if self._theme_configured:
            self.notify(f"ui.theme is set to '{self.settings.ui.theme}' in the "
                        f"{self.settings.sources['ui.theme']} settings: it applies next time",
                        severity="information", timeout=5)

    # -- the engine ---------------------------------------------------------------------------
    @work(group="engine", exclusive=True, exit_on_error=False)
    async def open_engine(self) -> None:
        """Open the engine (after the first paint)."""
        from engine import Engine

        engine = Engine(self.settings)
        try:
            await engine.open()
        except Exception as exc:
            self._engine_error = exc
            self.status = replace(self.status, state="error")
            self.report(exc)
        else:
            self.engine = engine
            if engine.upgraded is not None:
                from tui.cli.common import upgrade_note

                self.notify(upgrade_note(engine.upgraded).removeprefix("parley: "),
                            title="Database", timeout=10)
            backend = (await engine.schema_status()).backend
            self.status = replace(self.status, state="ready", backend=backend)
            if self.settings.watch.in_app:
                self.sync_watched_folders()
            self.set_model(None, None, self.status.context_used, self.status.context_estimated)
        finally:
            self._engine_opened.set()

    @work(group="watch", exclusive=True, exit_on_error=False)
    async def sync_watched_folders(self) -> None:
        """Keep the watched folders in sync while the app is open (``tui/watch_worker``)."""
        from tui.watch_worker import keep_in_sync

        await keep_in_sync(self)

    async def ready_engine(self) -> Engine:
        """The open engine; waits while it opens. Raises the error that stopped it."""
        await self._engine_opened.wait()
        if self.engine is None:
            error = self._engine_error
            if isinstance(error, ParleyError):
                raise ParleyError(f"the database is not open: {error.message}", error.hint)
            raise ParleyError("the database is not open", "see the error shown at start")
        return self.engine

    async def on_unmount(self) -> None:
        # Workers cancelled by the shutdown may still be writing (a stopped answer is stored,
        # shielded, before its worker ends): the engine closes after them, never under them.
        running = [worker.wait() for worker in self.workers if not worker.is_finished]
        if running:
            await asyncio.wait([asyncio.ensure_future(_settled(w)) for w in running],
                               timeout=QUIT_WAIT)
        if self.engine is not None:
            engine, self.engine = self.engine, None
            await engine.close()

    # -- status -------------------------------------------------------------------------------
    def set_model(self, provider: str | None, model: str | None, used: int,
                  estimated: bool) -> None:
        """Show the model in use (None: the configured one) and the context it holds."""
        self.status = model_status(self.status, self.settings, provider, model, used, estimated)

    def set_context(self, used: int, estimated: bool) -> None:
        """Show the context tokens the last call used."""
        self.status = replace(self.status, context_used=used, context_estimated=estimated)

    def set_note(self, note: str) -> None:
        """Show a short note on what is happening (empty clears it)."""
        self.status = replace(self.status, note=note)

    # -- errors and actions ---------------------------------------------------------------------
    def report(self, exc: BaseException) -> None:
        """Expected errors become notifications; anything else opens the error dialog."""
        from engine.errors import ConnectionLost

        if isinstance(exc, ConnectionLost):  # a server restart: a notice, the next try works
            self.notify(exc.one_line(), title="Database", severity="warning", timeout=10)
            return
        if isinstance(exc, ParleyError):
            self.notify(exc.one_line(), title="Error", severity="error", timeout=10)
            return
        from engine.db.reconnect import is_disconnect

        if is_disconnect(exc):  # lost outside a database session: still only a notice
            self.notify(f"lost the connection to the database ({exc}); the next action "
                        "reconnects", title="Database", severity="warning", timeout=10)
            return
        from tui.screens.dialogs import ErrorDialog

        details = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
        self.push_screen(ErrorDialog(f"Unexpected error: {type(exc).__name__}",
                                     str(exc) or type(exc).__name__, details))

    def action_help(self) -> None:
        from tui.screens.help import HelpScreen

        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    async def action_goto(self, mode: str, action: str = "") -> None:
        """Switch to ``mode`` and run one of its screen's actions (palette entries)."""
        await self.switch_mode(mode)
        if action:
            await self.screen.run_action(action)
