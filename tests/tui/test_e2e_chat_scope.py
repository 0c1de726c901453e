"""End to end in a real terminal (tmux): a chat scoped to one collection in the settings
dialog answers from that collection only. The real ``parley`` command, the test model
server as its own process, keys typed as a user types them."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import uuid
from pathlib import Path

from tests.tui.conftest import BERLIN, PARIS
from tests.tui.test_e2e_tmux import (  # noqa: F401  (model_server: a fixture)
    PARLEY,
    model_server,
    terminal_env,
    wait_for,
)


def test_a_chat_scoped_to_one_collection_cites_only_it(tmp_path: Path, parley_home: Path,
                                                        model_server: int) -> None:  # noqa: F811
    tmux = shutil.which("tmux")
    assert tmux, "tmux is needed for the end-to-end test"
    france, germany = tmp_path / "france", tmp_path / "germany"
    france.mkdir()
    germany.mkdir()
    (france / "paris.md").write_text(PARIS)
    (germany / "berlin.txt").write_text(BERLIN)
    env = terminal_env(tmp_path, parley_home, model_server)
    for folder, name in ((france, "france"), (germany, "germany")):
        done = subprocess.run([str(PARLEY), "ingest", str(folder), "--collection", name],
                              env=env, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr

    socket = f"parley-e2e-{uuid.uuid4().hex[:8]}"
    base = [tmux, "-L", socket]

    def screen() -> str:
        return subprocess.run([*base, "capture-pane", "-p", "-t", "e2e"], capture_output=True,
                              text=True).stdout

    def keys(*sent: str) -> None:
        subprocess.run([*base, "send-keys", "-t", "e2e", *sent], check=True)

    try:
        subprocess.run([*base, "new-session", "-d", "-x", "120", "-y", "40", "-s", "e2e",
                        "sh", "-c", shlex.quote(str(PARLEY))], env=env, check=True)
        subprocess.run([*base, "resize-window", "-t", "e2e", "-x", "120", "-y", "40"],
                       capture_output=True)
        wait_for(lambda: "searching: all (2)" in screen(), 60, "the chat header", screen)
        keys("C-g")
        # the dialog is ready (and focus settled) once the model's context window shows
        wait_for(lambda: "Chat settings" in screen() and "context window:" in screen(),
                 60, "the settings dialog", screen)
        # model field -> model list -> system prompt -> collections; germany is second
        keys("Tab", "Tab", "Tab")
        wait_for(lambda: "Space ticks or unticks a collection" in screen(), 30,
                 "the collections to have the focus", screen)
        keys("Down", "Space")
        wait_for(lambda: "will search: germany" in screen(), 30, "the ticked box", screen)
        keys("C-s")
        wait_for(lambda: "searching: germany" in screen(), 30, "the scoped header", screen)
        keys("What is the capital of France?", "Enter")
        wait_for(lambda: "1 source" in screen() and "berlin.txt" in screen(), 30,
                 "the answer and its source", screen)
        shown = screen()
        # the question is about Paris, yet the chat searched germany only
        assert "Paris is the capital of France [1]." in shown and "paris.md" not in shown
    finally:
        subprocess.run([*base, "kill-server"], capture_output=True)
