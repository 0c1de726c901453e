"""Rendering at scale in the terminal UI (headless, in process, on SQLite):

- the sidebar with ``--sessions`` sessions (default 10,000): from app start to the first
  page listed, and the next page when the cursor reaches the end;
- a session of ``--messages`` messages (default 2,000): from choosing it to the transcript
  drawn (the engine's read and decryption included), and one more window of history;
- streaming an answer of Markdown with code blocks from the local test server, at a fast
  model's pace (4 characters every 10 ms, about 100 tokens a second; ``--answer-kb`` / 6
  KB) and as a flood (12 characters a millisecond; ``--answer-kb`` KB): frames composed
  per second (each encoded to terminal output, as a real terminal would get it), the
  event loop's lag (what a keypress would wait), and the frame rate of the last third of
  the answer against the first third (an answer that grows must not get slower).

Run: ``.venv/bin/python bench/tui_render.py [--sessions 10000] [--messages 2000]``
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

PARAGRAPH = ("Parley keeps every answer tied to its sources [1], so a claim can be checked "
             "against the passage it came from [2]. The index is local and fast. ")
CODE = ("```python\nfor hit in engine.retrieval.search(query):\n"
        "    print(hit.path, hit.score)\n```\n")


def settings(**extra: Any) -> Any:
    from engine import load_settings

    return load_settings(overrides={"database": {"url": f"sqlite:///{os.environ['PARLEY_HOME']}"
                                                       "/parley.db"}, **extra})


async def make_sessions(count: int, messages: int = 0) -> int | None:
    """``count`` sessions (bulk insert, encrypted titles) and, if ``messages``, one more
    session with that many messages; returns its id."""
    from engine import Engine
    from engine.db import models as m

    async with Engine(settings()) as engine:
        assert engine.db is not None
        async with engine.db.write() as s:
            s.add_all(m.Session(user_id=engine.user_id, title=f"session {n}")
                      for n in range(count))
        if not messages:
            return None
        big = await engine.sessions.create("a long session")
        async with engine.db.write() as s:
            for n in range(messages):
                role = "user" if n % 2 == 0 else "assistant"
                text = f"Question {n}?" if role == "user" else PARAGRAPH * 3
                await engine.sessions.add_message_in(s, big.id, role, text)
        return big.id


async def settle(pilot: Any) -> None:
    for _ in range(200):
        await pilot.app.workers.wait_for_complete()
        await pilot.pause()
        if not any(w.is_running for w in pilot.app.workers):
            return


async def bench_sidebar_and_session(big_id: int) -> None:
    from tui.app import ParleyApp

    app = ParleyApp(settings())
    started = time.perf_counter()
    async with app.run_test(size=(120, 40)) as pilot:
        sidebar = app.screen.sidebar  # type: ignore[attr-defined]
        while sidebar.session_list.option_count < 100:
            await asyncio.sleep(0.001)
        first_page = time.perf_counter() - started
        await settle(pilot)
        started = time.perf_counter()
        sidebar.session_list.action_last()
        while sidebar.session_list.option_count < 200:
            await asyncio.sleep(0.001)
        next_page = time.perf_counter() - started

        started = time.perf_counter()
        app.screen.open_session(big_id)  # type: ignore[attr-defined]
        await settle(pilot)
        opened = time.perf_counter() - started
        transcript = app.screen.transcript  # type: ignore[attr-defined]
        started = time.perf_counter()
        await transcript.load_earlier()
        await pilot.pause()
        earlier = time.perf_counter() - started
        mounted = len(transcript.views)
    print(f"  sidebar, first page of 100   {first_page * 1000:6.0f} ms from app start")
    print(f"  sidebar, next page           {next_page * 1000:6.0f} ms")
    print(f"  open the long session        {opened * 1000:6.0f} ms (read, decrypt, draw the "
          "last 20)")
    print(f"  one more window of history   {earlier * 1000:6.0f} ms ({mounted} mounted)")


def answer_text(kilobytes: int) -> str:
    parts = []
    while sum(len(p) for p in parts) < kilobytes * 1024:
        parts.extend([PARAGRAPH * 4 + "\n\n", CODE + "\n"])
    return "".join(parts)


@contextlib.contextmanager
def model_server(reply: str, chunk: int, delay: float) -> Iterator[str]:
    """The test server in its own process (in a thread it would share the GIL with the UI
    and be slowed by it); yields its base URL."""
    folder = Path(tempfile.mkdtemp())
    (folder / "reply.txt").write_text(reply)
    script = ("import sys; from tests.support.openai_server import main; "
              "main(['--port-file', sys.argv[1], '--reply', open(sys.argv[2]).read(), "
              "'--chunk-size', sys.argv[3], '--chunk-delay', sys.argv[4]])")
    process = subprocess.Popen([sys.executable, "-c", script, str(folder / "port"),
                                str(folder / "reply.txt"), str(chunk), str(delay)],
                               cwd=REPO, stdout=subprocess.DEVNULL)
    try:
        while not (folder / "port").exists() or not (folder / "port").read_text():
            time.sleep(0.05)
        yield f"http://127.0.0.1:{(folder / 'port').read_text()}/v1"
    finally:
        process.terminate()
        process.wait(10)


async def bench_streaming(kilobytes: int, chunk: int, delay: float, label: str) -> None:
    from textual._compositor import CompositorUpdate

    from tui.app import ParleyApp

    reply = answer_text(kilobytes)
    with model_server(reply, chunk, delay) as base_url:
        app = ParleyApp(settings(providers={"test": {"base_url": base_url}},
                                 chat={"provider": "test", "model": "test-model"}))
        frames: list[float] = []
        real_display = app._display

        def display(screen: Any, renderable: Any) -> None:
            if isinstance(renderable, CompositorUpdate):
                renderable.render_segments(app.console)  # what a terminal would be sent
                frames.append(time.perf_counter())
            real_display(screen, renderable)

        app._display = display  # type: ignore[method-assign]
        lags: list[float] = []
        async with app.run_test(size=(120, 40)) as pilot:
            await settle(pilot)
            stop = asyncio.Event()

            async def watch_loop() -> None:
                while not stop.is_set():
                    before = time.perf_counter()
                    await asyncio.sleep(0.005)
                    lags.append(time.perf_counter() - before - 0.005)

            watcher = asyncio.create_task(watch_loop())
            frames.clear()
            prompt = app.screen.prompt  # type: ignore[attr-defined]
            prompt.load_text("Write a long answer.")
            started = time.perf_counter()
            await pilot.press("enter")
            await settle(pilot)
            elapsed = time.perf_counter() - started
            stop.set()
            await watcher
            shown = app.screen.transcript.last_view("assistant").content  # type: ignore[attr-defined]
    assert shown == reply, "the answer did not arrive whole"
    third = elapsed / 3
    early = sum(1 for f in frames if f - started < third) / third
    late = sum(1 for f in frames if f - started >= 2 * third) / third
    lags_ms = sorted(lag * 1000 for lag in lags)
    p95 = lags_ms[int(len(lags_ms) * 0.95)]
    print(f"  {label}: streamed {len(reply) / 1024:.0f} KB in {elapsed:.1f} s "
          f"({len(reply) / elapsed / 1024:.1f} KB/s)")
    print(f"  frames                       {len(frames) / elapsed:6.1f} /s "
          f"(first third {early:.1f} /s, last third {late:.1f} /s)")
    print(f"  event loop lag               p95 {p95:.1f} ms, worst {lags_ms[-1]:.1f} ms, "
          f"median {statistics.median(lags_ms):.1f} ms")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sessions", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=2_000)
    parser.add_argument("--answer-kb", type=int, default=48)
    args = parser.parse_args()
    os.environ["PARLEY_HOME"] = tempfile.mkdtemp(prefix="parley-bench-render-")
    started = time.perf_counter()
    big_id = asyncio.run(make_sessions(args.sessions, args.messages))
    assert big_id is not None
    print(f"TUI rendering (headless, SQLite): {args.sessions:,} sessions and one of "
          f"{args.messages:,} messages, built in {time.perf_counter() - started:.1f} s")
    asyncio.run(bench_sidebar_and_session(big_id))
    # About 100 tokens a second (a fast local model), then as fast as the server can send.
    asyncio.run(bench_streaming(max(1, args.answer_kb // 6), 4, 0.01, "model pace"))
    asyncio.run(bench_streaming(args.answer_kb, 12, 0.001, "flood"))


if __name__ == "__main__":
    main()
