"""The engine never depends on the UI: an import-linter contract and a runtime check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_import_linter_contract_holds() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint)], cwd=REPO, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 kept, 0 broken" in result.stdout


def test_importing_the_engine_does_not_load_textual_or_rich() -> None:
    code = ("import sys, engine, engine.facade, engine.history.sessions, engine.keys.crypto; "
            "print([m for m in ('textual', 'rich', 'tui') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                         text=True, check=True).stdout.strip()
    assert out == "[]"


def test_import_engine_with_tools_off_does_not_import_mcp(tmp_path: Path) -> None:
    """The MCP SDK takes seconds to import: only a starting MCP server may load it."""
    code = ("import sys, asyncio\n"
            "import engine\n"
            "from engine import Engine, load_settings\n"
            "import engine.chat.turn, engine.tools.toolbox, engine.tools.loop\n"
            "async def main():\n"
            "    async with Engine(load_settings()) as e:\n"
            "        await e.tools.catalog()\n"
            "asyncio.run(main())\n"
            "assert 'mcp' not in sys.modules, 'mcp was imported'\n"
            "print('ok')\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env["PARLEY_HOME"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          env=env, cwd=REPO, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
