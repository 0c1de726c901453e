"""Opening a cited source where it was found: the editor at the line, a pager, a PDF viewer.

``open_command`` decides what to run (a pure function of the path, the position, the
environment and what is installed); ``SourceOpener`` runs it. Terminal programs (editors,
pagers) take over the terminal while the app is suspended; graphical viewers start
detached. The runner is injected, so tests see the exact command without starting it.

The choice, in order: ``ui.editor`` from the config (a command; ``{path}``, ``{line}`` and
``{page}`` are filled in, else the path is appended), then for PDFs a viewer that can jump
to a page (zathura, evince, okular, mupdf) or the system opener (xdg-open, open), then
``$VISUAL`` / ``$EDITOR`` at the line, then ``$PAGER`` (less at the line), then the system
opener.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import ParleyError

if TYPE_CHECKING:
    from textual.app import App

# Editors whose "go to line" is not "+LINE path".
_COLON_EDITORS = {"code", "code-insiders", "codium", "subl", "sublime_text", "zed"}
_PAGE_VIEWERS: tuple[tuple[str, Callable[[str, int], list[str]]], ...] = (
    ("zathura", lambda p, n: ["zathura", f"--page={n}", p]),
    ("evince", lambda p, n: ["evince", f"--page-index={n}", p]),
    ("okular", lambda p, n: ["okular", "-p", str(n), p]),
    ("mupdf", lambda p, n: ["mupdf", p, str(n)]),
)


@dataclass(frozen=True, slots=True)
class OpenCommand:
    """A command that shows a source. ``terminal`` programs need the app suspended."""

    argv: tuple[str, ...]
    terminal: bool
    note: str = ""  # what the user should know (e.g. the page could not be passed)


def _editor_argv(command: str, path: str, line: int | None) -> list[str]:
    argv = shlex.split(command)
    name = Path(argv[0]).name if argv else ""
    if line is None:
        return [*argv, path]
    if name in _COLON_EDITORS:
        return [*argv, "-g", f"{path}:{line}"] if name.startswith("cod") else \
            [*argv, f"{path}:{line}"]
    if name in ("hx", "helix", "kak"):
        return [*argv, f"{path}:{line}"] if name != "kak" else [*argv, f"+{line}", path]
    return [*argv, f"+{line}", path]


def _template_argv(template: str, path: str, line: int | None, page: int | None) -> list[str]:
    argv = shlex.split(template)
    if not any("{path}" in part for part in argv):
        return _editor_argv(template, path, line)
    values = {"path": path, "line": str(line or 1), "page": str(page or 1)}
    return [part.format(**values) for part in argv]


def system_opener(platform: str = sys.platform) -> str | None:
    """The desktop's "open this file" command, if there is one."""
    if platform == "darwin":
        return "open"
    if platform.startswith("win"):
        return None
    return "xdg-open"


def open_command(path: str, *, line: int | None = None, page: int | None = None,
                 configured: str | None = None, environ: Mapping[str, str] | None = None,
                 which: Callable[[str], str | None] = shutil.which,
                 platform: str = sys.platform) -> OpenCommand:
    """What to run to show ``path`` at ``line`` (text) or ``page`` (PDF).

    Raises ``ParleyError`` when nothing can open it.
    """
    env = os.environ if environ is None else environ
    if configured:
        return OpenCommand(tuple(_template_argv(configured, path, line, page)), terminal=True)
    opener = system_opener(platform)
    if path.lower().endswith(".pdf"):
        for name, build in _PAGE_VIEWERS:
            if which(name):
                return OpenCommand(tuple(build(path, page or 1)), terminal=False)
        if opener and which(opener):
            note = f"opened at the first page: go to page {page}" if page and page > 1 else ""
            return OpenCommand((opener, path), terminal=False, note=note)
    editor = env.get("VISUAL") or env.get("EDITOR")
    if editor:
        return OpenCommand(tuple(_editor_argv(editor, path, line)), terminal=True)
    pager = env.get("PAGER") or ("less" if which("less") else "")
    if pager:
        argv = shlex.split(pager)
        if line and Path(argv[0]).name == "less":
            argv.append(f"+{line}g")
        return OpenCommand((*argv, path), terminal=True)
    if opener and which(opener):
        return OpenCommand((opener, path), terminal=False)
    raise ParleyError(f"no program to open {path}",
                      "set $EDITOR or $PAGER, or ui.editor in the config")


Runner = Callable[[OpenCommand], None]


def run_command(command: OpenCommand) -> None:
    """Run a terminal program to the end, or start a graphical one detached."""
    if command.terminal:
        subprocess.run(command.argv, check=False)
    else:
        subprocess.Popen(command.argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)


class SourceOpener:
    """Opens sources for the app; ``runner`` runs the command (replaced in tests)."""

    def __init__(self, configured: str | None = None, runner: Runner = run_command) -> None:
        self.configured = configured
        self.runner = runner

    def open(self, app: App[object], path: str, *, line: int | None = None,
             page: int | None = None) -> OpenCommand:
        """Show ``path`` at ``line`` or ``page``; raises ``ParleyError`` when it cannot."""
        if "://" not in path and not Path(path).exists():
            raise ParleyError(f"{path} is no longer there",
                              "it moved or was deleted since it was indexed; re-ingest it")
        command = open_command(path, line=line, page=page, configured=self.configured)
        try:
            if command.terminal:
                self._run_suspended(app, command)
            else:
                self.runner(command)
        except OSError as exc:
            raise ParleyError(f"cannot run {command.argv[0]}: {exc.strerror or exc}",
                              "check $EDITOR, $PAGER or ui.editor") from None
        return command

    def _run_suspended(self, app: App[object], command: OpenCommand) -> None:
        from textual.app import SuspendNotSupported

        try:
            with app.suspend():
                self.runner(command)
        except SuspendNotSupported:  # headless (tests, web): there is no terminal to hand over
            self.runner(command)
