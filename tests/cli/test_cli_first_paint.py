"""Plain ``parley``: the terminal UI starts without click and paints before the whole
configuration is validated, yet a broken configuration still ends it with one error line
naming the key and exit code 2, before it takes any input. Run in a real terminal (a pty).
"""

from __future__ import annotations

import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import threading
from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tui.cli.entry import plain_start


ESCAPES = re.compile(r"\x1b(\[[0-9;?<>=$]*[a-zA-Z~]|[()][0-9A-Za-z]|[=>])")


def in_terminal(home: Path, *args: str, timeout: float = 120.0) -> tuple[int, str, str]:
    """(exit code, what is left on the terminal after the app closed, everything written)
    of ``parley ARGS`` on a 120x40 terminal. Textual draws on stderr; the error line comes
    after it has left the alternate screen."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_HOME=str(home), TERM="xterm-256color")
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 120, 0, 0))
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", *args], cwd=REPO_ROOT, env=env,
                            stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    drawn: list[bytes] = []

    def drain() -> None:  # the app blocks on a full terminal otherwise
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:
                return
            if not chunk:
                return
            drawn.append(chunk)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc.wait(timeout=timeout)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        os.close(master)
        reader.join(timeout=10)
    written = b"".join(drawn).decode(errors="replace")
    after = written.rsplit("\x1b[?1049l", 1)[-1]  # what the alternate screen left
    return proc.returncode, ESCAPES.sub("", after).replace("\r\n", "\n").lstrip(), written


@pytest.mark.parametrize(("config", "args", "fragment"), [
    ("chat:\n  modle: x\n", (), "unknown config key 'chat.modle'"),
    ("retrieval:\n  top_k: -1\n", (), "invalid value for 'retrieval.top_k' (from file)"),
    ("chat:\n  provider: nowhere\n", ("--user", "someone"),
     "chat.provider 'nowhere' is not defined under 'providers'"),
])
def test_a_broken_config_found_after_the_first_frame_is_one_line_and_exit_2(
        parley_home: Path, config: str, args: tuple[str, ...], fragment: str) -> None:
    path = parley_home / "config.yaml"
    path.write_text("ui:\n  theme: nord\n" + config)
    code, err, written = in_terminal(parley_home, *args)
    assert code == 2, err
    assert "Ask a question" in ESCAPES.sub("", written)  # the first frame came first
    assert err.startswith("parley: error: ") and fragment in err, err
    assert len(err.strip().splitlines()) == 1
    assert not (parley_home / "parley.db").exists()  # the database was never opened


@pytest.mark.parametrize(("config", "fragment"), [
    ("ui:\n  show_sidebar: maybe\n", "invalid value for 'ui.show_sidebar' (from file)"),
    ("ui:\n  colour: red\n", "unknown config key 'ui.colour'"),
    ("ui: [\n", "at line"),
])
def test_a_broken_ui_section_stops_parley_before_any_frame(parley_home: Path, config: str,
                                                           fragment: str) -> None:
    (parley_home / "config.yaml").write_text(config)
    code, err, drawn = in_terminal(parley_home)
    assert code == 2 and fragment in err, err
    assert len(err.strip().splitlines()) == 1
    assert "\x1b[?1049h" not in drawn  # no screen at all


@pytest.mark.parametrize(("args", "expected"), [
    ([], (None, {})),
    (["--config", "c.yaml"], ("c.yaml", {})),
    (["--config=c.yaml", "--db", "sqlite:///x.db", "--user=ann"],
     ("c.yaml", {"database": {"url": "sqlite:///x.db"}, "user": "ann"})),
    (["--db", ""], (None, {})),  # an empty value sets nothing, as with click
    (["--user", "a", "--user", "b"], (None, {"user": "b"})),  # the last one wins
])
def test_plain_parley_arguments_are_parsed_without_click(
        args: list[str], expected: tuple[str | None, dict[str, object]]) -> None:
    assert plain_start(args) == expected


@pytest.mark.parametrize("args", [
    ["ask", "q"], ["--help"], ["-h"], ["--version"], ["--config"], ["--db", "--user", "x"],
    ["--config", ""], ["--config", "."], ["--verbose"], ["--user", "x", "sessions", "list"],
])
def test_everything_else_goes_to_click(args: list[str]) -> None:
    assert plain_start(args) is None


def test_the_command_line_still_answers_through_the_same_entry(parley_home: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env["PARLEY_HOME"] = str(parley_home)
    parley = Path(sys.executable).with_name("parley")
    for command in ([str(parley), "--version"], [sys.executable, "-m", "tui.cli", "--version"]):
        done = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 0 and done.stdout.startswith("parley"), done.stderr
    missing = subprocess.run([str(parley), "--config"], cwd=REPO_ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 2 and "--config" in missing.stderr
