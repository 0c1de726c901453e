"""Start ``parley`` (the real entry point, no subcommand) headless and print, as JSON, the
modules imported when the first frame is on screen; then quit.

The app validates its configuration and opens its engine right after the first refresh
(``ParleyApp.after_first_frame`` is called after it), so that call is where the snapshot is
taken. Run with ``-X importtime`` to learn which module imported which (the test does).
"""

from __future__ import annotations

import json
import sys


def main() -> None:
    import tui.app
    from tui.cli.entry import main as parley

    def snapshot(self: tui.app.ParleyApp) -> None:
        sys.stdout.write(json.dumps(sorted(sys.modules)) + "\n")
        sys.stdout.flush()
        self.exit()

    run = tui.app.ParleyApp.run
    tui.app.ParleyApp.after_first_frame = snapshot  # type: ignore[method-assign,assignment]
    tui.app.ParleyApp.run = (  # type: ignore[method-assign]
        lambda self, **kw: run(self, headless=True, **kw))
    sys.argv = ["parley", *sys.argv[1:]]
    parley()


if __name__ == "__main__":
    main()
