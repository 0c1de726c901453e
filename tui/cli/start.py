"""Starting the terminal UI from the command line (imports Textual only here)."""

from __future__ import annotations

import os
import sys

from tui.cli.common import AppContext, fail


def start_tui(context: AppContext) -> None:
    """Validate the configuration before any UI appears, run the app, then end at once."""
    from engine.errors import ParleyError

    try:
        settings = context.settings()
        from tui.keys import check_keys

        check_keys(settings)
    except ParleyError as exc:
        fail(exc.message, exc.hint, exc.exit_code)
        return
    from tui.app import ParleyApp

    app = ParleyApp(settings)
    app.run()
    exit_now(app.return_code or 0)


def exit_now(code: int) -> None:
    """End the process without the interpreter's teardown.

    When ``run`` returns the app has stopped its workers (a stopped answer is stored
    first), closed the engine (every write committed, connections closed) and restored the
    terminal. What the interpreter would still do is free every object of every module one
    by one (Textual, SQLAlchemy, numpy, onnxruntime): 1 to 2 seconds of a quit that looks
    hung, for memory the operating system reclaims anyway. Threads that are not daemons and
    ``atexit`` handlers still run first, as at a normal exit.
    """
    import atexit
    import threading

    for thread in threading.enumerate():
        if thread is not threading.current_thread() and not thread.daemon:
            thread.join()
    atexit._run_exitfuncs()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):  # closed or broken pipe: nothing left to save
            pass
    os._exit(code)
