"""The passphrase asked on a terminal: the real ``parley`` under a pseudo-terminal (the
prompt reads the terminal, not stdin), answered as a person would."""

from __future__ import annotations

import os
import pty
import select
import sys
import time
from pathlib import Path

from tests.portable.support import REPO, populate, table_digests


def _in_pty(args: list[str], answers: list[tuple[bytes, bytes]]) -> tuple[int, str]:
    """Run the CLI on a terminal; each time the output shows ``expect`` (in order), type
    ``send``. Returns the exit code and everything the terminal showed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env.update(PARLEY_HOME=os.environ["PARLEY_HOME"], PYTHONPATH=str(REPO), TERM="dumb")
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command on the terminal
        os.chdir(REPO)
        os.execve(sys.executable, [sys.executable, "-m", "tui.cli", *args], env)
    seen, pending, since = b"", list(answers), 0
    deadline = time.monotonic() + 300
    try:
        while True:
            assert time.monotonic() < deadline, seen.decode(errors="replace")
            ready, _, _ = select.select([fd], [], [], 1.0)
            if not ready:
                continue
            try:
                chunk = os.read(fd, 4096)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            seen += chunk
            if pending and pending[0][0] in seen[since:]:
                os.write(fd, pending.pop(0)[1])
                since = len(seen)  # the next answer waits for a prompt shown after this
    finally:
        _, status = os.waitpid(pid, 0)
        os.close(fd)
    return os.waitstatus_to_exitcode(status), seen.decode(errors="replace")


async def test_backup_and_restore_ask_for_the_passphrase(parley_home: Path) -> None:
    source = f"sqlite:///{parley_home / 'live.db'}"
    await populate(source, second_user=False)
    original = await table_digests(source)  # the backup adds a line to the audit log
    archive = parley_home / "sealed.parley-backup"
    code, shown = _in_pty(
        ["--db", source, "backup", str(archive), "--passphrase"],
        [(b"Passphrase", b"correct horse\n"), (b"Repeat", b"wrong horse\n"),
         (b"Passphrase", b"correct horse\n"), (b"Repeat", b"correct horse\n")])
    assert code == 0, shown
    assert "do not match" in shown  # asked again after a mismatch
    assert "horse" not in shown  # never echoed
    assert archive.read_bytes().startswith(b"PARLEY-SEALED-BACKUP")

    # restore notices the archive is sealed with a passphrase and asks, once
    target = parley_home / "restored.db"
    code, shown = _in_pty(["restore", str(archive), "--to", f"sqlite:///{target}"],
                          [(b"Passphrase", b"battery staple\n")])
    assert code == 1, shown
    assert not target.exists()
    code, shown = _in_pty(["restore", str(archive), "--to", f"sqlite:///{target}"],
                          [(b"Passphrase", b"correct horse\n")])
    assert code == 0, shown
    assert await table_digests(f"sqlite:///{target}") == original
