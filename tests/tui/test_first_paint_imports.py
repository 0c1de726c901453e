"""What ``parley`` imports before its first frame stays within an allowed list.

Every module imported before the first paint is paid for on every launch (the target is
300 ms from the shell, ``bench/tui_startup.py``). The standard library is allowed; other
packages and Parley's own modules must be listed here. A feature that needs a package
(an MCP client, a file watcher, a settings dialog, a chart) imports it where it is used:
inside the function, the screen that is pushed, or under ``TYPE_CHECKING`` for annotations.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO_ROOT

# Third-party packages the first frame needs: Textual, Rich under it (and
# typing_extensions, platformdirs under them). Not here on purpose, all loaded after the
# first frame or never by the terminal UI: click (plain `parley` skips the command group),
# pydantic and pydantic-settings (the configuration is validated after the first frame),
# SQLAlchemy, aiosqlite, asyncpg, numpy, onnxruntime, httpx, markdown-it, pygments.
PACKAGES = {"textual", "rich", "typing_extensions", "platformdirs"}
# PyYAML, only when there is a config file to read (the first frame's `ui` keys).
WITH_A_CONFIG_FILE = {"yaml"}
# Textual modules that are heavy and not needed for the empty chat screen.
TEXTUAL_LATER = {"textual.widgets._markdown", "textual.widgets._data_table",
                 "textual.widgets._progress_bar", "textual.widgets._tabbed_content",
                 "textual.widgets._sparkline", "textual.widgets._log",
                 "textual.widgets._rich_log", "textual.widgets._switch",
                 "textual.widgets._checkbox", "textual.widgets._selection_list"}
# Parley's own modules on the way to the chat screen.
OWN = {
    "engine", "engine.errors",
    # the pydantic-free part of the configuration: files, and the first frame's keys
    "engine.config", "engine.config.files", "engine.config.early",
    "tui", "tui.app", "tui.keys", "tui.stylesheet",
    "tui.keys_table",  # every class's default keys, read only to check a `ui.keys` section
    "tui.ui_state",
    "tui.cli", "tui.cli.entry", "tui.cli.start",
    "tui.screens", "tui.screens.base", "tui.screens.chat", "tui.screens.chat_turns",
    "tui.screens.chat_sources",  # the chat screen's sources half
    "tui.screens.chat_setup",  # the chat screen's set-up half; its dialogs load later
    "tui.widgets", "tui.widgets.footer", "tui.widgets.format", "tui.widgets.message",
    "tui.widgets.prompt", "tui.widgets.sessions", "tui.widgets.sources",
    "tui.widgets.status", "tui.widgets.transcript",
}
# Interpreter and packaging machinery, not imports of the app.
MACHINERY = ("__main__", "_distutils_hack", "__editable__", "_sysconfigdata", "cython_runtime",
             "_cython_", "tests")


def first_paint_modules(home: Path, *args: str) -> tuple[list[str], dict[str, str]]:
    """(modules imported at the first frame, module -> the module that imported it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_HOME=str(home), TERM="xterm-256color")
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "tests.support.first_paint",
                           *args],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    modules = json.loads(done.stdout.strip().splitlines()[-1])
    return modules, importers(done.stderr)


def importers(importtime: str) -> dict[str, str]:
    """module -> its importer, from ``-X importtime`` (children are printed first, one
    level deeper)."""
    parent: dict[str, str] = {}
    waiting: dict[int, list[str]] = {}
    for line in importtime.splitlines():
        if not line.startswith("import time:") or "|" not in line or "self [us]" in line:
            continue
        field = line.split("|", 2)[2]
        depth = (len(field) - len(field.lstrip())) // 2
        name = field.strip()
        for child in waiting.pop(depth + 1, []):
            parent[child] = name
        waiting.setdefault(depth, []).append(name)
    return parent


def allowed(module: str, packages: set[str] = PACKAGES) -> bool:
    top = module.split(".", 1)[0]
    if top in sys.stdlib_module_names or module.startswith(MACHINERY):
        return True
    if module in TEXTUAL_LATER:
        return False
    return top in packages or module in OWN


def chain(module: str, parent: dict[str, str]) -> str:
    links = [module]
    while links[-1] in parent and len(links) < 12:
        links.append(parent[links[-1]])
    return " <- ".join(links)


def check(modules: list[str], parent: dict[str, str], packages: set[str]) -> None:
    assert "tui.screens.chat" in modules  # the snapshot was taken with the chat screen up
    extra = [m for m in modules if not allowed(m, packages)]
    # report the outermost new modules (their own imports follow from them)
    roots = [m for m in extra if parent.get(m) not in extra]
    assert not extra, (
        f"{len(extra)} module(s) are now imported before the first paint of `parley`, "
        "which every launch pays for:\n"
        + "\n".join(f"  {chain(m, parent)}" for m in roots[:15])
        + "\nImport them where they are used (inside the function or action, in the screen "
        "or dialog that needs them, or under `if TYPE_CHECKING:` for annotations) so the "
        "first frame does not wait for them. If the first frame really needs one, add it "
        "to the lists in tests/tui/test_first_paint_imports.py and check "
        "`.venv/bin/python bench/tui_startup.py` stays within 300 ms.")


def test_modules_imported_before_the_first_paint_stay_within_the_allowed_list(
        parley_home: Path) -> None:
    modules, parent = first_paint_modules(parley_home)
    check(modules, parent, PACKAGES)
    for module in ("click", "pydantic", "yaml", "sqlalchemy", "tui.cli.main"):
        assert module not in modules  # the tests of the lists above are not vacuous


def test_with_a_config_file_only_pyyaml_is_added(parley_home: Path) -> None:
    """A config file is read as written (PyYAML), not validated (pydantic), before the
    first frame; the flags of plain `parley` do not bring click in either. A `ui.keys`
    section is checked for conflicts before any UI appears, against every class's keys
    read from a generated table, not by importing every screen."""
    config = parley_home / "elsewhere.yaml"
    config.write_text("ui:\n  theme: nord\n  enter_sends: false\n  keys:\n"
                      "    chat.toggle_sidebar: f9\n    library.refresh: ctrl+r\n"
                      "retrieval:\n  top_k: 4\n")
    modules, parent = first_paint_modules(parley_home, "--config", str(config),
                                          "--user", "someone")
    check(modules, parent, PACKAGES | WITH_A_CONFIG_FILE)
    assert "yaml" in modules and "pydantic" not in modules and "click" not in modules
    assert "tui.keys_table" in modules  # the keymap was checked, from the table
    assert "tui.screens.library" not in modules and "tui.screens.search" not in modules
