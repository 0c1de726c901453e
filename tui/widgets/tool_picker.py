"""The session's tools, inside the chat settings dialog: a choice of mode (as configured,
only the ticked tools, every tool, none) and a checkbox per tool of every configured
server, with each server's state (ready, unavailable and why, not trusted yet).

Listing tools starts MCP servers, so nothing is listed until the section is opened: the
dialog stays quick for people who only change the temperature, and a local server whose
command is new asks for trust (the card) only when its tools are wanted.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.widgets import Button, Collapsible, Select, SelectionList, Static

if TYPE_CHECKING:
    from engine.types import SessionSummary, ToolServerInfo

MODES = (("only the ticked tools", "some"), ("every tool", "all"), ("no tools", "none"))
STATE = {"ready": "ready", "stopped": "not started", "unavailable": "unavailable",
         "untrusted": "not trusted", "disabled": "disabled in the config"}


def mode_of(selection: Sequence[str] | None) -> str:
    if selection is None:
        return "config"
    if not selection:
        return "none"
    return "all" if list(selection) == ["*"] else "some"


def server_line(info: ToolServerInfo) -> str:
    """``files (stdio) · ready in 840 ms · 4 tools`` or the reason it is not."""
    took = f" in {info.start_ms:.0f} ms" if info.start_ms else ""
    count = f" · {len(info.tools)} tool{'s' if len(info.tools) != 1 else ''}" \
        if info.state == "ready" else ""
    line = f"{info.name} ({info.kind}) · {STATE.get(info.state, info.state)}{took}{count}"
    return line + (f"\n  {info.error}" if info.error else "")


class ToolPicker(Vertical):
    """Pick the session's tools (see the module docstring). ``value()`` is what to store."""

    def __init__(self, summary: SessionSummary, *, enabled: bool) -> None:
        super().__init__(id="tools-picker")
        self.summary = summary
        self.enabled = enabled
        self.loaded = False
        self.touched = False  # a tool was ticked or unticked by hand
        self.filled: set[str] = set()  # what was ticked when the list was filled
        self.catalog: list[ToolServerInfo] = []

    def _title(self, selection: Sequence[str] | None) -> str:
        from engine.tools.selection import describe

        return f"Tools · {describe(selection, self.enabled)}"

    def compose(self) -> ComposeResult:
        configured = "on" if self.enabled else "off"
        with Collapsible(title=self._title(self.summary.tools), collapsed=True,
                         id="tools-section"):
            yield Select([(f"as configured (tools {configured})", "config"), *MODES],
                         value=mode_of(self.summary.tools), allow_blank=False,
                         id="tools-mode")
            yield SelectionList[str](id="tools-list")
            yield Static("Open to list the servers' tools.", id="tools-servers",
                         classes="dialog-hint", markup=False)
            with Horizontal(classes="tools-actions"):
                yield Button("Retry servers", id="tools-retry")

    @on(Collapsible.Expanded)
    def _opened(self) -> None:
        if not self.loaded:
            self.load()

    @on(Button.Pressed, "#tools-retry")
    def _retry(self, event: Button.Pressed) -> None:
        event.stop()
        engine = getattr(self.app, "engine", None)
        if engine is not None:
            for info in self.catalog:
                engine.tools.trust.reconsider(info.name)
        self.load()

    @work(group="tools-picker", exclusive=True, exit_on_error=False)
    async def load(self) -> None:
        """List every server's tools (starting servers; new commands ask for trust)."""
        from tui.screens.server_trust import install_trust

        self.query_one("#tools-servers", Static).update("Starting the tool servers…")
        engine = await self.app.ready_engine()  # type: ignore[attr-defined]
        install_trust(self.app, engine)
        try:
            catalog = await engine.tools.catalog()
        except Exception as exc:  # a broken configuration: say so, keep the dialog
            self.query_one("#tools-servers", Static).update(
                f"The tools could not be listed: {getattr(exc, 'message', exc)}")
            return
        self.show(catalog)

    def show(self, catalog: list[ToolServerInfo]) -> None:
        """Fill the list from ``catalog``: the session's tools are ticked (all of them when
        it follows the configuration or allows every tool)."""
        selection = self.summary.tools
        keep = self._ticked_now() if self.touched else None
        items = []
        for server in catalog:
            for tool in server.tools:
                first = tool.description.splitlines()[0][:48] if tool.description else ""
                ticked = (tool.canonical in keep if keep is not None else
                          not selection or any(fnmatchcase(tool.canonical, p)
                                               for p in selection))
                items.append((f"{tool.canonical} · {tool.policy}  {first}", tool.canonical,
                              ticked))
        tools = self.query_one("#tools-list", SelectionList)
        self.loaded = False  # filling the list is not the user ticking
        tools.clear_options()
        tools.add_options(items)
        self.catalog, self.loaded = catalog, True
        self.filled = self._ticked_now()
        self.query_one("#tools-servers", Static).update(
            "\n".join(server_line(s) for s in catalog) or "No tool servers are configured.")

    def _ticked_now(self) -> set[str]:
        return set(self.query_one("#tools-list", SelectionList).selected)

    @on(SelectionList.SelectedChanged, "#tools-list")
    def _ticked(self, event: SelectionList.SelectedChanged) -> None:
        event.stop()
        if not self.loaded or (not self.touched and self._ticked_now() == self.filled):
            return  # the list being filled, not the user
        self.touched = True
        mode = self.query_one("#tools-mode", Select)
        if mode.value != "some":
            mode.value = "some"  # ticking a tool means choosing tools
        self._retitle()

    @on(Select.Changed, "#tools-mode")
    def _mode(self, event: Select.Changed) -> None:
        event.stop()
        self.query_one("#tools-list", SelectionList).disabled = event.value in ("all", "none")
        if event.value == "some" and not self.loaded:
            self.query_one(Collapsible).collapsed = False
        self._retitle()

    def _retitle(self) -> None:
        self.query_one(Collapsible).title = self._title(self.chosen())

    def chosen(self) -> list[str] | None:
        """The selection the form shows (None: as configured)."""
        mode = self.query_one("#tools-mode", Select).value
        if mode == "config":
            return None
        if mode in ("none", "all"):
            return [] if mode == "none" else ["*"]
        if self.touched or (self.loaded and mode_of(self.summary.tools) != "some"):
            return sorted(self._ticked_now())
        return list(self.summary.tools or [])  # unchanged: keep the stored names and globs

    def value(self) -> Any:
        """The selection to store, or ``UNSET`` when it did not change."""
        from engine.session_setup.settings import UNSET

        chosen, old = self.chosen(), self.summary.tools
        return UNSET if chosen == (list(old) if old is not None else None) else chosen
