"""Quitting mid-answer: what arrived is stored before the engine closes. (The real command's
quit, ending the process at once after the app has closed, is in ``test_e2e_tmux``; its
time in ``bench/tui_startup.py``.)"""

from __future__ import annotations

from pathlib import Path

from engine import Engine
from tests.support.openai_server import OpenAITestServer
from tests.tui.conftest import settle, sqlite_settings, wait_until
from tui.app import ParleyApp
from tui.widgets.prompt import PromptInput
from tui.widgets.transcript import Transcript


async def test_quitting_mid_answer_stores_what_arrived_before_the_engine_closes(
        parley_home: Path, chat_server: OpenAITestServer) -> None:
    chat_server.reply = "slowly " * 400
    chat_server.chunk_delay = 0.02
    settings = await sqlite_settings(parley_home, chat_server)
    app = ParleyApp(settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        transcript = app.screen.query_one(Transcript)
        prompt = app.screen.query_one(PromptInput)
        prompt.load_text("Tell me slowly")
        await pilot.press("enter")
        await wait_until(pilot, lambda: (view := transcript.last_view("assistant")) is not None
                         and len(view.content) > 20)
        await pilot.press("ctrl+q")
    assert app.engine is None  # closed on the way out
    async with Engine(settings) as engine:
        [summary] = await engine.sessions.list()
        last = (await engine.sessions.get(summary.id)).messages[-1]
        assert last.role == "assistant" and last.status == "interrupted"
        assert last.content.startswith("slowly")
