"""A quit never waits forever on a task the app left behind.

Once the app has ended, the tasks still pending are connection closes scheduled for pooled
connections that cancelled workers dropped; such a close can wait on a thread that has
already stopped. ``run_bounded`` cancels them and gives them ``STRAGGLER_WAIT`` seconds.
"""

from __future__ import annotations

import asyncio
import threading

from tui.cli import start


class _LeavesAStraggler:
    """Stands in for the app: its run leaves one task that ignores being cancelled (as a
    close waiting on a stopped thread does) and one that ends when cancelled."""

    def __init__(self) -> None:
        self.cancelled_cleanly = False

    def run(self, *, loop: asyncio.AbstractEventLoop) -> None:
        async def stuck() -> None:
            never: asyncio.Future[None] = loop.create_future()
            try:
                await asyncio.sleep(3600)
            finally:
                await never  # cancelled again: the outer wait gives up on it

        async def polite() -> None:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                self.cancelled_cleanly = True
                raise

        async def main() -> None:
            loop.create_task(stuck())
            loop.create_task(polite())
            await asyncio.sleep(0)

        loop.run_until_complete(main())


def test_a_task_that_ignores_cancellation_does_not_hold_the_quit(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(start, "STRAGGLER_WAIT", 0.5)
    app = _LeavesAStraggler()
    done = threading.Event()

    def run() -> None:
        start.run_bounded(app)
        done.set()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    # generous: the bound is half a second; a hang would never set it
    assert done.wait(120), "run_bounded waited forever on a task that ignores cancellation"
    assert app.cancelled_cleanly
