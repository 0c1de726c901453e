"""Turns on the chat screen: ask, regenerate, edit the last question, stop, switch branches.

One worker (group ``turn``) streams an answer into the transcript. Escape cancels it; the
engine keeps what arrived (status ``interrupted``; a running tool call ``cancelled``); tool
calls show as lines and the approval card (``chat_tools``). A failed call shows its error
and puts the question back in the prompt, so nothing typed is lost. The answer's sources
are shown by ``chat_sources``.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING

from textual import on
from textual.reactive import reactive
from textual.widgets import Static

from tui.keys import key_hint
from tui.screens.base import engine_task
from tui.screens.chat_sources import ChatSources
from tui.widgets.message import Answer, MessageView
from tui.widgets.prompt import PromptInput
from tui.widgets.sources import SourcesPanel
from tui.widgets.transcript import Transcript

if TYPE_CHECKING:
    from engine import Engine
    from engine.types import Done, NothingFound, Searched
    from tui.widgets.sessions import Sidebar
    from tui.widgets.tool_line import ToolLine

EDIT_NOTE = "Editing your last question: {send} asks it again as a new branch, {stop} cancels."


class ChatTurns(ChatSources):
    """The turn-taking half of the chat screen (``ChatScreen`` adds the rest)."""

    streaming: reactive[bool] = reactive(False, init=False)
    session_id: int | None = None
    editing = False
    shown = 0
    """Counts the sessions shown: a turn that ends after the user moved on leaves it alone."""

    if TYPE_CHECKING:
        transcript: Transcript
        prompt: PromptInput
        sources: SourcesPanel
        sidebar: Sidebar

        def setup_event(self, event: Searched | NothingFound) -> None: ...
        def refresh_setup(self) -> object: ...

    # -- sending --------------------------------------------------------------------------------
    @on(PromptInput.Submitted)
    def _submitted(self, event: PromptInput.Submitted) -> None:
        if self.streaming:
            self.notify(f"Still answering: press {key_hint(self.app, 'chat.stop', 'escape')} to "
                        "stop first", severity="warning")
            return
        self.prompt.remember(event.text)
        self.prompt.clear()
        kind = "edit" if self.editing else "ask"
        self.end_edit()
        self.run_turn(kind, event.text)

    def action_regenerate(self) -> None:
        if self.streaming:
            return
        if self.session_id is None or self.transcript.last_view("assistant") is None:
            self.notify("Nothing to regenerate yet: ask a question first", severity="warning")
            return
        self.run_turn("regenerate", "")

    def action_edit_last(self) -> None:
        last = self.transcript.last_view("user")
        if self.streaming or last is None or self.session_id is None:
            self.notify("No question to edit yet", severity="warning")
            return
        self.editing = True
        self.prompt.restore(last.content)
        self.prompt.add_class("-editing")
        note = self.query_one("#prompt-note", Static)
        note.update(EDIT_NOTE.format(send=key_hint(self.app, "prompt.submit", "enter"),
                                     stop=key_hint(self.app, "chat.stop", "escape")))
        note.display = True
        self.prompt.focus()

    def end_edit(self, *, restore: bool = False) -> None:
        """Leave edit mode (``restore`` empties the prompt again)."""
        if not self.editing:
            return
        self.editing = False
        self.prompt.remove_class("-editing")
        self.query_one("#prompt-note", Static).display = False
        if restore:
            self.prompt.clear()

    def stop_turn(self, *, notify: bool = False) -> None:
        """Cancel a streaming answer; the engine keeps what arrived."""
        if self.streaming:
            self.workers.cancel_group(self, "turn")
            if notify:
                self.notify("Stopped. The partial answer is kept.", timeout=3)

    def watch_streaming(self, streaming: bool) -> None:
        self.refresh_bindings()
        self.parley.set_note("answering…" if streaming else "")

    async def _prepare(self, kind: str, text: str) -> MessageView:
        transcript = self.transcript
        if kind in ("regenerate", "edit"):
            answer = transcript.last_view("assistant")
            if answer is not None:
                await answer.remove()
        if kind == "edit":
            question = transcript.last_view("user")
            if question is not None:
                await question.remove()
        if kind in ("ask", "edit"):
            names = tuple(a.path.rsplit("/", 1)[-1] for a in getattr(self, "attachments", ()))
            await transcript.add(MessageView("user", text, attached=names))
        info = self.parley.status
        return await transcript.add(MessageView("assistant", streaming=True,
                                                answer=Answer(model=info.model or None)))

    @engine_task("turn")
    async def run_turn(self, kind: str, text: str) -> None:
        """Stream one answer (``kind``: ask, regenerate or edit)."""
        # here, not at the top: the engine's types are not needed for the first paint
        from engine.types import BudgetWarning, Delta, Done, NothingFound, Searched, Sources

        self.streaming = True
        shown = self.shown
        view: MessageView | None = None
        answer = Answer(model=self.parley.status.model or None)
        done: Done | None = None
        lines: dict[str, ToolLine] = {}
        try:
            view = await self._prepare(kind, text)
            engine = await self.engine()
            stream = view.stream()
            try:
                from tui.screens.chat_tools import turn_events

                async with contextlib.aclosing(turn_events(self, engine, kind, text)) as events:
                    async for event in events:
                        if isinstance(event, Delta):
                            await stream.write(event.text)
                        elif isinstance(event, Sources):
                            answer.citations = event.citations
                            answer.unknown_markers = event.unknown_markers
                        elif isinstance(event, Done):
                            done = event
                        elif isinstance(event, Searched | NothingFound):
                            self.setup_event(event)
                        elif isinstance(event, BudgetWarning):
                            self.notify(event.message, title="Budget", severity="warning",
                                        timeout=10)
                        else:  # tool calls and notices
                            from tui.screens.chat_tools import tool_event
                            await tool_event(self, event, stream, lines)
            finally:
                await stream.stop()
                from tui.screens.chat_tools import end_tool_lines
                end_tool_lines(self, lines)
        except asyncio.CancelledError:
            answer.status = "interrupted"
            raise
        except Exception as exc:
            answer.status = "error"
            answer.error = getattr(exc, "message", None) or str(exc) or type(exc).__name__
            if kind != "regenerate" and (view is None or not view.content.strip()) \
                    and not self.prompt.text.strip():
                self.prompt.restore(text)
            raise
        finally:
            self.streaming = False
            await self._finish(view, answer, done, still_shown=shown == self.shown)
            if kind != "ask" and done is not None and shown == self.shown:
                self.adopt_versions(done.session_id)

    async def _finish(self, view: MessageView | None, answer: Answer, done: Done | None, *,
                      still_shown: bool) -> None:
        if done is not None:
            answer.status = done.status if answer.status == "complete" else answer.status
            answer.model = done.model or answer.model
            answer.error = done.error or answer.error
            if view is not None:
                view.message_id = done.message_id
        if view is not None and view.is_attached:
            with contextlib.suppress(Exception):  # the screen may be closing
                await view.finish(answer)
            self.show_sources(answer)
        if not still_shown:
            return  # the user opened another session meanwhile: leave it as it is
        if done is not None:
            new_session = self.session_id != done.session_id
            self.session_id = done.session_id
            used = done.usage.prompt_tokens + done.usage.completion_tokens
            self.parley.set_context(used, done.usage.estimated)
            self.refresh_session_entry(done.session_id)
            if new_session:
                self.refresh_setup()
        elif answer.status == "interrupted":
            # Stopped with Esc there is no Done, but the engine stored the turn (and created
            # the session, for a new chat): follow it, so the next question continues it.
            self.refresh_session_entry(self.session_id, adopt=self.session_id is None)

    @engine_task("versions")
    async def adopt_versions(self, session_id: int) -> None:
        """After a regenerate or an edit: number the versions of the new question and
        answer, so left and right can switch between them."""
        engine = await self.engine()
        detail = await engine.sessions.get(session_id)
        if session_id == self.session_id and not self.streaming:
            self.transcript.adopt_tail(detail.messages)

    @engine_task("sessions-top")
    async def refresh_session_entry(self, session_id: int | None, adopt: bool = False) -> None:
        """Move the session just answered to the top of the sidebar (``adopt``: and make
        the newest session the current one, after a first answer was stopped)."""
        engine = await self.engine()
        latest = await engine.sessions.list(limit=1)
        if not latest or (latest[0].id != session_id and not adopt):
            return
        if adopt and self.session_id is None:
            self.session_id = latest[0].id
        self.sidebar.upsert_top(latest[0])

    # -- branches and stored sessions ------------------------------------------------------
    @on(Transcript.BranchRequested)
    def _branch_requested(self, event: Transcript.BranchRequested) -> None:
        if self.streaming:
            self.notify(f"Still answering: press {key_hint(self.app, 'chat.stop', 'escape')} to "
                        "stop first", severity="warning")
            return
        if self.session_id is not None:
            self.switch_branch(self.session_id, event.message_id)

    @engine_task("session")
    async def switch_branch(self, session_id: int, message_id: int) -> None:
        """Make the branch through ``message_id`` the active one, and show it."""
        engine = await self.engine()
        await engine.chat.branches.switch(session_id, message_id)
        await self.show_session(engine, session_id, select=message_id)
        self.refresh_session_entry(session_id)  # switching counts as activity: to the top

    async def show_session(self, engine: Engine, session_id: int, *,
                           select: int | None = None) -> None:
        """Show a stored session's active branch (``select``: with the cursor on it)."""
        detail = await engine.sessions.get(session_id)
        self.session_id = session_id
        self.end_edit()
        messages = detail.messages
        await self.transcript.show(messages, await engine.tools.runs_of(
            [m.id for m in messages if m.role == "assistant"]))
        self.prompt.set_history(m.content for m in messages if m.role == "user")
        last = next((m for m in reversed(messages) if m.role == "assistant"), None)
        self.show_sources(Answer(citations=last.citations) if last else None)
        used = sum(len(m.content) for m in messages) // 4
        self.parley.set_model(detail.session.provider, detail.session.model, used, True)
        if select is not None:
            await self.transcript.select_message(select)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("regenerate", "edit_last") and self.streaming:
            return None  # shown dimmed while an answer streams
        return True
