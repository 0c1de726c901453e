"""End to end: the real ``parley`` command in a real terminal (tmux), against the test model
server running as its own process. Type a question, see the streamed answer with its
citation and the source it cites, quit, and check the exit status."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.tui.conftest import BERLIN, PARIS

PARLEY = Path(sys.executable).with_name("parley")
REPLY = "Paris is the capital of France [1]."


def wait_for(check: Callable[[], bool], timeout: float, what: str,
             screen: Callable[[], str] = lambda: "") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}; the screen was:\n{screen()}")


TOOL_ROUNDS = '[[{"name": "parley__search", "arguments": {"query": "capital of France"}}]]'


@pytest.fixture
def model_server(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[int]:
    """``tests.support.openai_server`` as a separate process; yields its port."""
    port_file = tmp_path / "port"
    extra = list(getattr(request, "param", ()))
    process = subprocess.Popen(
        [sys.executable, "-m", "tests.support.openai_server", "--port", "0", "--port-file",
         str(port_file), "--reply", REPLY, "--chunk-delay", "0.01", *extra],
        cwd=REPO_ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for(lambda: port_file.exists() and port_file.read_text().strip() != "", 20,
                 "the model server")
        yield int(port_file.read_text())
    finally:
        process.terminate()
        process.wait(10)


def terminal_env(tmp_path: Path, parley_home: Path, port: int,
                 extra: str = "") -> dict[str, str]:
    """The environment of a ``parley`` run in the tmux pane: a config naming the test model
    server (plus ``extra`` YAML), no ``PARLEY_*`` from outside, and the pane's size."""
    config = tmp_path / "config.yaml"
    config.write_text(
        f"database:\n  url: sqlite:///{parley_home / 'parley.db'}\n"
        f"providers:\n  test:\n    base_url: http://127.0.0.1:{port}/v1\n"
        "chat:\n  provider: test\n  model: test-model\n"
        "embedding:\n  provider: test\n  model: test-embedding\n" + extra)
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_HOME=str(parley_home), PARLEY_CONFIG=str(config), TERM="xterm-256color",
               # the size the app reads first (shutil.get_terminal_size), matching the pane
               COLUMNS="120", LINES="40")
    return env


@pytest.mark.parametrize("model_server", [("--tool-rounds", TOOL_ROUNDS)], indirect=True)
def test_approve_a_tool_call_in_the_real_terminal_app(tmp_path: Path, parley_home: Path,
                                                      model_server: int) -> None:
    tmux = shutil.which("tmux")
    assert tmux, "tmux is needed for the end-to-end test"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "paris.md").write_text(PARIS)
    env = terminal_env(tmp_path, parley_home, model_server,
                       "tools:\n  enabled: true\n  allow: []\n")
    ingest = subprocess.run([str(PARLEY), "ingest", str(docs)], env=env, capture_output=True,
                            text=True, timeout=120)
    assert ingest.returncode == 0, ingest.stderr
    socket = f"parley-e2e-{uuid.uuid4().hex[:8]}"
    status = tmp_path / "exit-status"
    base = [tmux, "-L", socket]

    def screen() -> str:
        return subprocess.run([*base, "capture-pane", "-p", "-t", "e2e"], capture_output=True,
                              text=True).stdout

    try:
        subprocess.run([*base, "new-session", "-d", "-x", "120", "-y", "40", "-s", "e2e", "sh",
                        "-c", f"{shlex.quote(str(PARLEY))}; echo $? > "
                        f"{shlex.quote(str(status))}"], env=env, check=True)
        subprocess.run([*base, "resize-window", "-t", "e2e", "-x", "120", "-y", "40"],
                       capture_output=True)
        wait_for(lambda: "Ask a question" in screen() and "tools: on" in screen(), 60,
                 "the app to open its database", screen)
        subprocess.run([*base, "send-keys", "-t", "e2e", "What is the capital of France?",
                        "Enter"], check=True)
        wait_for(lambda: "Run parley.search?" in screen(), 30, "the approval card", screen)
        assert "capital of France" in screen()  # the arguments, in full
        subprocess.run([*base, "send-keys", "-t", "e2e", "y"], check=True)
        wait_for(lambda: "✓ parley.search" in screen() and "1 source" in screen(), 30,
                 "the tool line and the answer", screen)
        assert "Paris is the capital of France [1]." in screen()
        assert "tools: 1" in screen()
        subprocess.run([*base, "send-keys", "-t", "e2e", "C-q"], check=True)
        wait_for(status.exists, 20, "the app to quit", screen)
        assert status.read_text().strip() == "0"
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)


def test_ask_a_question_in_the_real_terminal_app(tmp_path: Path, parley_home: Path,
                                                 model_server: int) -> None:
    tmux = shutil.which("tmux")
    assert tmux, "tmux is needed for the end-to-end test"
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "paris.md").write_text(PARIS)
    (docs / "berlin.txt").write_text(BERLIN)
    env = terminal_env(tmp_path, parley_home, model_server)
    ingest = subprocess.run([str(PARLEY), "ingest", str(docs)], env=env, capture_output=True,
                            text=True, timeout=120)
    assert ingest.returncode == 0, ingest.stderr

    socket = f"parley-e2e-{uuid.uuid4().hex[:8]}"
    status = tmp_path / "exit-status"
    command = f"{shlex.quote(str(PARLEY))}; echo $? > {shlex.quote(str(status))}"
    base = [tmux, "-L", socket]

    def screen() -> str:
        done = subprocess.run([*base, "capture-pane", "-p", "-t", "e2e"], capture_output=True,
                              text=True)
        return done.stdout

    try:
        subprocess.run([*base, "new-session", "-d", "-x", "120", "-y", "40", "-s", "e2e",
                        "sh", "-c", command], env=env, check=True)
        # Without an attached client some tmux setups keep the default 80x24 window.
        subprocess.run([*base, "resize-window", "-t", "e2e", "-x", "120", "-y", "40"],
                       capture_output=True)
        wait_for(lambda: "Ask a question" in screen() and "sqlite" in screen(), 60,
                 "the app to open its database", screen)
        subprocess.run([*base, "send-keys", "-t", "e2e", "What is the capital of France?",
                        "Enter"], check=True)
        wait_for(lambda: "1 source" in screen() and "paris.md" in screen()
                 and "No sessions yet" not in screen(), 30, "the answer", screen)
        shown = screen()
        assert "What is the capital of France?" in shown
        assert "Paris is the capital of France [1]." in shown  # streamed, with its marker
        assert "[1] …" in shown and "paris.md  L1-3" in shown  # the source, at its lines
        subprocess.run([*base, "send-keys", "-t", "e2e", "C-q"], check=True)
        wait_for(status.exists, 20, "the app to quit", screen)
        assert status.read_text().strip() == "0"
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)
