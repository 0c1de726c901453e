"""Starting the terminal UI from the command line (imports Textual only here).

The first frame is drawn from the few ``ui`` keys read as written (``engine.config.early``);
the whole configuration is validated right after it, before the app handles a key. Either
way a broken configuration ends ``parley`` with one error line and exit code 2.
"""

from __future__ import annotations

import gc
import os
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.errors import ParleyError


def start_tui(config_path: str | None, overrides: Mapping[str, Any]) -> None:
    """Check what the first frame needs, run the app, then end at once."""
    # Until the first frame (``ParleyApp.after_first_frame``), importing Textual and building
    # the screen allocate hundreds of thousands of objects that all live on: the cyclic
    # collector would walk them again and again for nothing (about 5% of the first paint).
    gc.disable()
    from engine.config.early import read_early
    from engine.errors import ParleyError

    def validated() -> Any:
        from engine.config import load_settings

        return load_settings(config_path, dict(overrides))

    try:
        early = read_early(config_path, overrides)
        settings = early if early is not None else validated()
        from tui.keys import check_keys

        check_keys(settings)
    except ParleyError as exc:
        fail(exc)
    from tui.app import ParleyApp

    app = ParleyApp(settings, settle=validated if early is not None else None, resume_gc=True)
    run_bounded(app)
    if app.config_error is not None:  # found right after the first frame
        fail(app.config_error)
    exit_now(app.return_code or 0)


STRAGGLER_WAIT = 2.0  # seconds a quit gives tasks left behind once the app has ended


def run_bounded(app: Any) -> None:
    """Run the app on a loop of our own and end it without waiting forever on stragglers.

    ``asyncio.run`` cancels the tasks still pending when the app returns and waits for all
    of them, with no limit. The only ones left at that point are connection closes
    SQLAlchemy schedules for pooled connections dropped by cancelled workers; now and then
    aiosqlite's close of such a connection waits for a worker thread that has already
    stopped, and the process never ended after Ctrl+Q. By then the app has stored what its
    workers were writing and closed the engine (every write committed), so a close that
    does not finish within ``STRAGGLER_WAIT`` is abandoned: the process is about to end."""
    import asyncio

    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    try:
        app.run(loop=loop)
    finally:
        pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
        for task in pending:
            task.cancel()
        if pending:
            loop.run_until_complete(asyncio.wait(pending, timeout=STRAGGLER_WAIT))
        loop.run_until_complete(loop.shutdown_asyncgens())
        # the default executor's idle threads would keep ``exit_now`` joining them
        loop.run_until_complete(loop.shutdown_default_executor())


def fail(exc: ParleyError) -> None:
    """The one error line of ``tui.cli.common.fail``, without importing click."""
    sys.stderr.write(f"parley: error: {exc.message}" + (f"; {exc.hint}" if exc.hint else "")
                     + "\n")
    sys.stderr.flush()
    sys.exit(exc.exit_code)


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
