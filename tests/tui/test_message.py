"""Messages: citation links, code blocks, and a long answer streamed in segments."""

from __future__ import annotations

from engine import Settings
from tests.support.openai_server import OpenAITestServer
from tests.tui.conftest import ask, settle
from tui.app import ParleyApp
from tui.widgets.message import AnswerStream, _open_fence, code_blocks, link_markers
from tui.widgets.transcript import Transcript


def test_markers_become_links_but_code_is_left_alone() -> None:
    text = "Paris [1], Lyon [2, 3] and [4-5]. In code: `items[0]`.\n\n```\nx[1]\n```\n"
    linked = link_markers(text)
    assert "\\[[1](cite:1)\\]" in linked
    assert "\\[[2](cite:2), [3](cite:3)\\]" in linked
    assert "\\[[4](cite:4)-[5](cite:5)\\]" in linked
    assert "`items[0]`" in linked and "\nx[1]\n" in linked
    assert link_markers("no markers here") == "no markers here"


def test_code_blocks_and_open_fences() -> None:
    text = "Intro\n\n```python\nprint(1)\n```\n\n    indented\n\n~~~\nls\n~~~\n"
    assert code_blocks(text) == ["print(1)\n", "indented\n", "ls\n"]
    assert _open_fence("a\n```py\ncode\n") == "```"
    assert _open_fence("a\n```py\ncode\n````\n") is None  # a longer fence closes it
    assert _open_fence("~~~\n```\n") == "~~~"


async def test_a_long_answer_streams_in_segments_that_never_split_code(
        tui_settings: Settings, chat_server: OpenAITestServer) -> None:
    paragraph = "A sentence about the sources [1] that goes on for a while. " * 6
    code = "```python\n" + "\n\nprint('inside a fence')\n" * 30 + "```\n"
    chat_server.reply = "\n\n".join([paragraph] * 6 + [code] + [paragraph] * 6) + "\n"
    chat_server.chunk_size = 50
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        await ask(pilot, "Tell me everything.")
        answer = app.screen.query_one(Transcript).last_view("assistant")
        assert answer is not None and answer.content == chat_server.reply
        bodies = answer.bodies
        assert len(bodies) >= 3
        for body in bodies:
            assert _open_fence(body.source) is None  # every segment closes its fences
            assert "[1](cite:1)" in body.source  # and its markers are links
        assert len(bodies[0].source.replace("\\[[1](cite:1)\\]", "[1]")) >= \
            AnswerStream.SEGMENT_CHARS
        assert code_blocks(answer.content)[0].count("inside a fence") == 30


async def test_a_long_session_opens_with_its_last_messages_and_loads_the_rest(
        tui_settings: Settings) -> None:
    from engine import Engine

    async with Engine(tui_settings) as engine:
        session = await engine.sessions.create("long")
        for n in range(50):
            await engine.sessions.add_message(session.id, "user" if n % 2 == 0 else
                                              "assistant", f"message {n}")
    app = ParleyApp(tui_settings)
    async with app.run_test(size=(120, 36)) as pilot:
        await settle(pilot)
        app.screen.open_session(session.id)  # type: ignore[attr-defined]
        await settle(pilot)
        transcript = app.screen.query_one(Transcript)
        views = transcript.views
        assert len(views) == Transcript.WINDOW
        assert views[-1].content == "message 49" and views[0].content == "message 30"
        earlier = str(transcript.query_one("#transcript-earlier").render())
        assert "30 earlier messages" in earlier
        transcript.focus()
        await pilot.press("home")  # walks to the first message, loading every window
        await settle(pilot)
        assert [v.content for v in transcript.views] == [f"message {n}" for n in range(50)]
        assert not transcript.query("#transcript-earlier")
        assert transcript.selected == 0
