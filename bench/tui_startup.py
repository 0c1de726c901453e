"""Start-up of the terminal UI, measured from the shell.

Launches the real ``parley`` command ``--runs`` times (default 10) in a 120x40 tmux pane
and polls ``capture-pane`` every few milliseconds. Prints the median, minimum and maximum
of, counted from the moment the shell starts ``parley``:

- first paint: the status bar and the focused prompt are on screen (keys typed from now
  on land in the prompt);
- ready: the database is open and the sidebar listed its sessions (the status bar names
  the backend): a question sent now is answered at once;
- for scale, ``parley --version`` run the same way (Python, click and the config);
- quit: after one question answered with sources (the default offline setup: the bundled
  embedder, extractive answers, two small documents ingested by ``parley ingest``), from
  sending Ctrl+Q to the process gone (the shell writes the clock when ``parley`` returns,
  so this figure has no polling in it).

The database (SQLite, in a temporary PARLEY_HOME) holds ``--sessions`` sessions (default
1,000). Polling adds a few milliseconds of resolution. Parley's modules are byte-compiled
first, as an installed copy is (``PYTHONDONTWRITEBYTECODE`` would otherwise leave a source
checkout compiling every module on every launch: about a tenth of the first paint).

Run: ``.venv/bin/python bench/tui_startup.py [--runs 10] [--sessions 1000] [--skip-quit]``
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import os
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.tui_render import make_sessions  # noqa: E402

PARLEY = Path(sys.executable).with_name("parley")
DOCS = {"paris.md": "# Paris\n\nParis is the capital of France. It is known for the Louvre "
                    "museum.\n\n## History\n\nParis was founded in the 3rd century BC.\n",
        "berlin.txt": "Berlin is the capital of Germany.\nIt has many museums too.\n"}
QUESTION = "What is the capital of France?"


def launch(env: dict[str, str], command: str, checks: dict[str, Callable[[str], bool]],
           timeout: float = 30.0) -> dict[str, float]:
    """Seconds from launch until each check first holds on the screen."""
    socket = f"parley-bench-{uuid.uuid4().hex[:8]}"
    base = ["tmux", "-L", socket]
    seen: dict[str, float] = {}
    started = time.perf_counter()
    subprocess.run([*base, "new-session", "-d", "-x", "120", "-y", "40", "-s", "b",
                    "sh", "-c", command + "; sleep 30"], env=env, check=True)
    try:
        while len(seen) < len(checks) and time.perf_counter() - started < timeout:
            screen = subprocess.run([*base, "capture-pane", "-p", "-t", "b"],
                                    capture_output=True, text=True).stdout
            now = time.perf_counter() - started
            for name, check in checks.items():
                if name not in seen and check(screen):
                    seen[name] = now
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)
    missing = set(checks) - set(seen)
    if missing:
        raise SystemExit(f"never saw: {', '.join(sorted(missing))}")
    return seen


def time_quit(env: dict[str, str], parley: str, newest: str, timeout: float = 60.0) -> float:
    """Seconds from sending Ctrl+Q (after one answered question) until ``parley`` exits."""
    socket = f"parley-bench-{uuid.uuid4().hex[:8]}"
    base = ["tmux", "-L", socket]
    stamp = Path(tempfile.mkdtemp(prefix="parley-bench-quit-")) / "exited"
    command = f"{parley}; date +%s.%N > {shlex.quote(str(stamp))}; sleep 30"

    def screen() -> str:
        return subprocess.run([*base, "capture-pane", "-p", "-t", "b"], capture_output=True,
                              text=True).stdout

    def wait(check: Callable[[str], bool], what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if check(screen()):
                return
            time.sleep(0.02)
        raise SystemExit(f"never saw {what}; the screen was:\n{screen()}")

    subprocess.run([*base, "new-session", "-d", "-x", "120", "-y", "40", "-s", "b",
                    "sh", "-c", command], env=env, check=True)
    try:
        # ready: the database is open and the sidebar lists sessions (the newest is the
        # question of the previous run, if any)
        wait(lambda s: "sqlite" in s and (newest in s or QUESTION[:15] in s), "the app ready")
        subprocess.run([*base, "send-keys", "-t", "b", QUESTION, "Enter"], check=True)
        wait(lambda s: "source" in s and "paris.md" in s, "the answer with its sources")
        started = time.time()
        subprocess.run([*base, "send-keys", "-t", "b", "C-q"], check=True)
        deadline = time.monotonic() + timeout
        while not (stamp.exists() and stamp.read_text().strip()):
            if time.monotonic() > deadline:
                raise SystemExit(f"parley did not exit; the screen was:\n{screen()}")
            time.sleep(0.01)
        return float(stamp.read_text()) - started
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)
        shutil.rmtree(stamp.parent, ignore_errors=True)


def summary(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    return f"median {statistics.median(ms):6.0f} ms   (min {ms[0]:.0f}, max {ms[-1]:.0f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--sessions", type=int, default=1000)
    parser.add_argument("--skip-quit", action="store_true", help="only time the start-up")
    args = parser.parse_args()
    if not shutil.which("tmux"):
        raise SystemExit("tmux is needed")
    home = Path(tempfile.mkdtemp(prefix="parley-bench-tui-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_HOME=str(home), TERM="xterm-256color")
    os.environ["PARLEY_HOME"] = str(home)
    for package in ("engine", "tui"):
        compileall.compile_dir(REPO / package, quiet=1)
    asyncio.run(make_sessions(args.sessions))
    parley = shlex.quote(str(PARLEY))
    newest = f"session {args.sessions - 1} "  # the sidebar lists it first

    version = [launch(env, f"{parley} --version", {"printed": lambda s: "parley" in s})
               ["printed"] for _ in range(args.runs)]
    paint: list[float] = []
    ready: list[float] = []
    for _ in range(args.runs):
        seen = launch(env, parley, {
            "paint": lambda s: "Ask a question" in s and "parley" in s,
            "ready": lambda s: "sqlite" in s and newest in s})
        paint.append(seen["paint"])
        ready.append(seen["ready"])
    print(f"TUI start-up, {args.runs} launches, {args.sessions:,} sessions in the database")
    print(f"  parley --version        {summary(version)}")
    print(f"  first paint (prompt)    {summary(paint)}")
    print(f"  database open, sidebar  {summary(ready)}")
    if not args.skip_quit:
        docs = home / "docs"
        docs.mkdir()
        for name, text in DOCS.items():
            (docs / name).write_text(text)
        subprocess.run([str(PARLEY), "ingest", str(docs)], env=env, check=True,
                       capture_output=True)
        quits = [time_quit(env, parley, newest) for _ in range(args.runs)]
        print(f"  quit after an answer    {summary(quits)}")
    shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    main()
