"""The ``parley`` command for tests, two ways, with one result shape.

``run_cli`` runs the click command in this process (about 40x less CPU than a fresh
interpreter that imports SQLAlchemy and the engine again); ``real_cli`` starts the real
``python -m tui.cli`` in a subprocess. Both take the same arguments and return a
``subprocess.CompletedProcess[str]`` (``returncode``, ``stdout``, ``stderr``), so a test can
switch one call from one to the other without touching its assertions.

Use ``real_cli`` where the process itself is under test (exit codes of the paths a user
meets on bad input, a broken config or a refused member; signals; pseudo-terminals; a fresh
interpreter's environment or imports) and ``run_cli`` for the steps of a scenario that test
what a command does.

In-process runs are isolated the way a new process would be: the environment is the
caller's minus every ``PARLEY_`` variable, plus ``env``; the working directory is ``cwd``;
the command runs in a thread of its own, so its ``asyncio.run`` gets a fresh event loop even
when the caller is an async test; stdin is ``stdin`` (or empty) and is not a terminal, as
with ``subprocess.run(..., capture_output=True)``. An exception that escapes the command is
printed on stderr as a traceback with exit code 1, as the interpreter would.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import traceback
from collections.abc import Mapping, Sequence
from pathlib import Path

from click.testing import CliRunner, Result

REPO = Path(__file__).resolve().parents[2]
_lock = threading.Lock()  # os.environ, the cwd and sys.std* are process-wide


def _environment(home: Path | str | None, env: Mapping[str, str] | None) -> dict[str, str]:
    full = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")
            or k.startswith("PARLEY_TEST_POSTGRES")}
    if home is not None:
        full["PARLEY_HOME"] = str(home)
    elif "PARLEY_HOME" in os.environ:  # the parley_home fixture's, as the helpers had it
        full["PARLEY_HOME"] = os.environ["PARLEY_HOME"]
    full.update(env or {})
    return full


def real_cli(*args: str, home: Path | str | None = None, env: Mapping[str, str] | None = None,
             stdin: str | None = None, cwd: Path | str = REPO,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``python -m tui.cli ARGS`` in a subprocess."""
    full = _environment(home, env)
    full["PYTHONPATH"] = str(REPO)
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=cwd, env=full,
                          input=stdin, capture_output=True, text=True, timeout=timeout)


def run_cli(*args: str, home: Path | str | None = None, env: Mapping[str, str] | None = None,
            stdin: str | None = None, cwd: Path | str = REPO,
            timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``parley ARGS`` run in this process; the same result as ``real_cli``."""
    from tui.cli.main import cli

    full = _environment(home, env)
    # CliRunner sets these for the call and restores them afterwards; None unsets.
    overlay: dict[str, str | None] = {k: None for k in os.environ if k not in full}
    overlay.update(full)
    box: dict[str, Result] = {}

    def invoke() -> None:
        box["result"] = CliRunner(env=overlay).invoke(cli, list(args), input=stdin,
                                                      prog_name="parley")

    with _lock:
        before = os.getcwd()
        os.chdir(cwd)
        try:
            worker = threading.Thread(target=invoke, name="parley-cli")
            worker.start()
            worker.join(timeout)
            if worker.is_alive():
                raise subprocess.TimeoutExpired(["parley", *args], timeout)
        finally:
            os.chdir(before)
    return _completed(args, box["result"])


def _completed(args: Sequence[str], result: Result) -> subprocess.CompletedProcess[str]:
    stderr = result.stderr
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        stderr += "".join(traceback.format_exception(result.exception))
    return subprocess.CompletedProcess(["parley", *args], result.exit_code, result.stdout,
                                       stderr)
