"""Starting the suite's MCP server (``tests.support.mcp_server``) without importing the
SDK here: an ``mcp_servers`` entry for stdio, or a Streamable HTTP server on 127.0.0.1."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def stdio_config(**extra: object) -> dict[str, object]:
    """An ``mcp_servers`` entry that starts this server over stdio (trusted, so nobody is
    asked first, unless ``trusted=False`` is given)."""
    return {"command": sys.executable, "args": ["-m", "tests.support.mcp_server", "stdio"],
            "cwd": str(REPO), "trusted": True, **extra}


@contextmanager
def http_server(timeout: float = 120.0) -> Iterator[str]:
    """This server over Streamable HTTP on a free port of 127.0.0.1; yields its URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.mcp_server", "http",
                             str(port)], cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the MCP test server did not start") from None
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/mcp"
    finally:
        proc.terminate()
        proc.wait(10)
