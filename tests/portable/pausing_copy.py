"""A ``db copy`` in its own OS process that stops in a given phase until it is killed: it
writes MARKER when the copy reaches PHASE at step AT ("(indexes)" after AT vector indexes
were built, "(verify)" after AT tables were verified), then blocks on its stdin.
Run: python -m tests.portable.pausing_copy SOURCE TARGET PHASE AT MARKER"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from engine.portable.copier import Copier


def main(source: str, target: str, phase: str, at: int, marker: Path) -> None:
    def progress(name: str, done: int, total: int) -> None:
        if name == phase and done >= at:
            marker.write_text(f"{name} {done}/{total}")
            sys.stdin.read()  # never returns: the test kills this process here

    asyncio.run(Copier(source, target, progress=progress, batch=50).run())


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), Path(sys.argv[5]))
