"""How the current chat is set up, on the chat screen: the header line (what it searches,
its model, prompt and parameters), the settings dialog (Ctrl+G), personas when starting a
chat (Ctrl+N), and attachments (F8 picks a file, a long paste becomes one) shown as chips
above the prompt until the question that carries them is sent.

Dialogs are imported when first opened, so none of this weighs on the first paint.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, Any

from textual import on
from textual.containers import Horizontal
from textual.widgets import Button, Static

from tui.screens.base import ParleyScreen, engine_task
from tui.widgets.prompt import PromptInput

if TYPE_CHECKING:
    from engine import Engine
    from engine.types import ChatScope, NothingFound, Searched, SessionSummary

PASTED = "pasted text"


def header_text(scope: ChatScope, summary: SessionSummary | None, model: str,
                window: int | None) -> str:
    """``searching: all (3) │ test-model │ custom prompt │ temp 0.2 · top-k 8``."""
    parts = [scope.describe()]
    if scope.keyword_only:
        parts[0] += f" (keywords only: {', '.join(scope.keyword_only)})"
    parts.append(model + (f" · ctx {window:,}" if window else ""))
    if summary is not None and summary.system_prompt:
        parts.append("custom prompt")
    params = summary.params if summary is not None else {}
    named = {"temperature": "temp", "top_k": "top-k", "max_tokens": "max"}
    if params:
        parts.append(" · ".join(f"{named.get(k, k)} {v}" for k, v in params.items()))
    return "  │  ".join(parts)


class ChatSetup(ParleyScreen):
    """The set-up half of the chat screen (mixed into ``ChatScreen``)."""

    session_id: int | None = None
    attachments: list[Any]
    """Loaded attachments waiting for the next question (``LoadedAttachment``)."""

    def init_setup(self) -> None:
        self.attachments = []

    # -- the header -------------------------------------------------------------------------
    @engine_task("setup")
    async def refresh_setup(self) -> None:
        """Show what the current chat searches and uses (header, status bar)."""
        engine = await self.engine()
        session_id = self.session_id
        summary = (await engine.sessions.get(session_id)).session if session_id else None
        scope = await engine.chat.scope(session_id)
        header = self.query_one("#chat-header", Static)
        try:
            name, model = await engine.chat._choose_model(summary, None, None)
            window = await engine.chat.context_window(name, model)
        except Exception as exc:  # no model configured: still say what is searched
            header.update(f"{scope.describe()}  │  {getattr(exc, 'message', exc)}")
            return
        if session_id != self.session_id:
            return  # another chat was opened meanwhile
        header.update(header_text(scope, summary, model, window.tokens))
        self.parley.status = replace(self.parley.status, context_window=window.tokens)
        if not scope.documents and scope.rag:
            from engine.session_setup.scope import NOTHING_INDEXED_HINT

            header.update(f"searching: nothing indexed yet: {NOTHING_INDEXED_HINT}")

    def setup_event(self, event: Searched | NothingFound) -> None:
        """A turn's word on its search: the question is stored (its attachments with it),
        or nothing was found (say where it looked)."""
        from engine.types import Searched

        if isinstance(event, Searched):
            if self.attachments:
                self.clear_attachments()
            return
        from engine.session_setup.scope import nothing_found_note

        note = nothing_found_note(event.scope)
        self.notify(note[0].upper() + note[1:], title="Sources", timeout=8)

    # -- the settings dialog ----------------------------------------------------------------
    def action_session_settings(self) -> None:
        self.open_settings()

    @engine_task("settings")
    async def open_settings(self) -> None:
        """Open the settings of the current chat (a new chat gets its session now)."""
        from tui.screens.session_settings import SessionSettingsDialog

        engine = await self.engine()
        if self.session_id is None:
            summary = await engine.chat.start()
            self.session_id = summary.id
            self.sidebar.upsert_top(summary)  # type: ignore[attr-defined]
        else:
            summary = (await engine.sessions.get(self.session_id)).session
        collections = await engine.library.collections()

        def saved(result: SessionSummary | None) -> None:
            if result is not None:
                self.notify("Saved: the next question uses these settings", timeout=3)
                self.parley.set_model(result.provider, result.model,
                                      self.parley.status.context_used,
                                      self.parley.status.context_estimated)
                self.refresh_setup()

        self.app.push_screen(SessionSettingsDialog(summary, collections), saved)

    # -- personas ------------------------------------------------------------------------------
    @engine_task("personas")
    async def offer_personas(self) -> None:
        """Ctrl+N: a blank chat, or one from a persona when there are any."""
        engine: Engine | None = self.parley.engine
        personas = await engine.personas.list() if engine is not None else []
        if not personas:
            return
        from tui.screens.chat_pickers import BLANK, PersonaPicker

        def chosen(name: str | None) -> None:
            if name and name != BLANK:
                self.start_from_persona(name)

        self.app.push_screen(PersonaPicker(personas), chosen)

    @engine_task("personas")
    async def start_from_persona(self, name: str) -> None:
        """A new session set up by persona ``name`` (its first message in the prompt)."""
        engine = await self.engine()
        summary = await engine.chat.start(persona=name)
        persona = await engine.personas.get(name)
        self.session_id = summary.id
        self.sidebar.upsert_top(summary)  # type: ignore[attr-defined]
        self.parley.set_model(summary.provider, summary.model, 0, False)
        prompt = self.query_one(PromptInput)
        if persona.first_message and not prompt.text.strip():
            prompt.restore(persona.first_message)
        self.notify(f"New chat as {name}", timeout=3)
        self.refresh_setup()

    # -- attachments ---------------------------------------------------------------------------
    def action_attach_file(self) -> None:
        from tui.screens.chat_pickers import AttachDialog

        def picked(path: str | None) -> None:
            if path:
                self.attach_file(path)

        self.app.push_screen(AttachDialog(), picked)

    @engine_task("attach")
    async def attach_file(self, path: str) -> None:
        """Read a file to send with the next question; a bad one is reported in one line."""
        import asyncio

        from engine.session_setup.attachments import load_attachment

        limit = int(self.parley.settings.retrieval.max_file_mb * 1_048_576)
        loaded = await asyncio.to_thread(load_attachment, path, max_bytes=limit)
        self.add_attachment(loaded)

    @on(PromptInput.LongPaste)
    def _long_paste(self, event: PromptInput.LongPaste) -> None:
        from engine.session_setup.attachments import text_attachment

        try:
            self.add_attachment(text_attachment(event.text, PASTED))
        except Exception as exc:
            self.parley.report(exc)

    def add_attachment(self, loaded: Any) -> None:
        self.attachments.append(loaded)
        self.show_chips()
        info = loaded.info()
        self.notify(f"Attached {info.path} ({info.lines} lines): it goes with your next "
                    "question", timeout=4)

    def clear_attachments(self) -> None:
        self.attachments = []
        self.show_chips()

    def show_chips(self) -> None:
        """One chip per attachment above the prompt; clicking one removes it."""
        row = self.query_one("#attachments", Horizontal)
        row.remove_children()
        for number, loaded in enumerate(self.attachments):
            info = loaded.info()
            name = info.path.rsplit("/", 1)[-1]
            row.mount(Button(f"📎 {name} · {info.lines} lines  ✕", name=str(number),
                             classes="chip", compact=True))
        row.display = bool(self.attachments)

    @on(Button.Pressed, ".chip")
    def _chip_pressed(self, event: Button.Pressed) -> None:
        number = int(event.button.name or 0)
        if 0 <= number < len(self.attachments):
            gone = self.attachments.pop(number)
            self.notify(f"Removed {gone.path}", timeout=2)
        self.show_chips()
