"""The chat settings dialog: provider and model (a picker of the server's models, configured
ones first; any typed name works), system prompt, collections, RAG, top-k, temperature and
max tokens of the current session, and the tools its model may call
(``tui.widgets.tool_picker``). Imported when first opened, never before first paint.

Saving checks the model against the server: a model it does not have is reported here and
the session keeps its old one. The dialog is dismissed with the saved session, or None.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.suggester import SuggestFromList
from textual.widgets import (
    Button,
    Checkbox,
    Input,
    Label,
    OptionList,
    Select,
    SelectionList,
    Static,
    TextArea,
)
from textual.widgets.option_list import Option

from tui.widgets.tool_picker import ToolPicker

if TYPE_CHECKING:
    from engine import Engine
    from engine.types import CollectionInfo, SessionSummary
    from tui.app import ParleyApp

CONFIGURED = "(configured)"
HINTS = {
    "settings-provider": "Enter opens the list of configured providers.",
    "settings-model": "Type any model name (→ completes it), or Tab to the list and pick one.",
    "settings-models": "Enter picks the highlighted model.",
    "settings-system": "The system prompt: Enter adds a line; empty uses the configured one.",
    "settings-collections": "Space ticks or unticks a collection; none ticked searches all.",
    "settings-rag": "Space switches searching your documents on or off.",
    "tools-mode": "Which tools the model may call in this chat.",
    "tools-list": "Space ticks or unticks a tool; ticking one chooses only the ticked tools.",
}
DEFAULT_HINT = "Tab moves between fields, Ctrl+S saves, Esc cancels."


def window_text(tokens: int, source: str) -> str:
    """``context: 4,096 tokens (server /props (llama.cpp))``."""
    return f"context window: {tokens:,} tokens ({source})"


class SessionSettingsDialog(ModalScreen["SessionSummary | None"]):
    """Edit the settings of one session (see the module docstring)."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="settings.cancel"),
                Binding("ctrl+s", "save", "Save", id="settings.save")]
    AUTO_FOCUS = "#settings-model"

    def __init__(self, summary: SessionSummary, collections: list[CollectionInfo]) -> None:
        super().__init__(classes="dialog")
        self.summary = summary
        self.collections = collections

    @property
    def parley(self) -> ParleyApp:
        return self.app  # type: ignore[return-value]

    def compose(self) -> ComposeResult:
        s, params = self.summary, self.summary.params or {}
        providers = [(name, name) for name in sorted(self.parley.settings.providers)]
        configured = self.parley.settings.chat.provider or "offline answers"
        with Vertical(classes="dialog-box", id="settings-box"):
            yield Label(f"Chat settings · {s.title}", classes="dialog-title")
            with VerticalScroll(id="settings-scroll"):
                yield Label("Provider", classes="field-label")
                yield Select([(f"{CONFIGURED} {configured}", CONFIGURED), *providers,
                              ("offline answers (extractive)", "extractive")],
                             value=s.provider or CONFIGURED, allow_blank=False,
                             id="settings-provider")
                yield Label("Model (pick one, or type any name)", classes="field-label")
                yield Input(s.model or "", placeholder="the provider's configured model",
                            id="settings-model")
                yield OptionList(id="settings-models")
                yield Static("", id="settings-window", classes="dialog-hint")
                yield Label("System prompt (empty: the configured one)", classes="field-label")
                yield TextArea(s.system_prompt or "", id="settings-system", soft_wrap=True,
                               show_line_numbers=False)
                yield Label(self._collections_label(self.summary.collections),
                            classes="field-label", id="settings-collections-label")
                yield SelectionList[str](*[
                    (f"{c.name} ({c.document_count} document"
                     f"{'s' if c.document_count != 1 else ''})", c.name,
                     c.name in s.collections) for c in self.collections],
                    id="settings-collections")
                rag = s.rag if s.rag is not None else self.parley.settings.chat.rag
                yield Checkbox("Search my documents before answering (RAG)", rag,
                               id="settings-rag")
                with Horizontal(id="settings-params"):
                    for name, label, kind in (("top_k", "Top-k", "integer"),
                                              ("temperature", "Temperature", "number"),
                                              ("max_tokens", "Max tokens", "integer")):
                        with Vertical(classes="param"):
                            yield Label(label, classes="field-label")
                            value = params.get(name)
                            yield Input("" if value is None else str(value), type=kind,
                                        placeholder="configured", id=f"settings-{name}")
                yield ToolPicker(self.summary, enabled=self.parley.settings.tools.enabled)
            yield Static(DEFAULT_HINT, id="settings-hint", classes="dialog-hint")
            yield Static("", id="settings-error", classes="dialog-error")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button("Save (Ctrl+S)", variant="primary", id="save")

    def on_mount(self) -> None:
        self.query_one("#settings-error").display = False
        self.load_models()
        # focusing the model field scrolls it into view: keep the provider above it in view
        self.call_after_refresh(self.query_one("#settings-scroll").scroll_home, animate=False)

    def on_descendant_focus(self, event: Any) -> None:
        hint = HINTS.get(getattr(event.widget, "id", None) or "", DEFAULT_HINT)
        self.query_one("#settings-hint", Static).update(hint)

    # -- the model picker -----------------------------------------------------------------------
    def _provider(self) -> str | None:
        value = self.query_one("#settings-provider", Select).value
        return None if value == CONFIGURED else str(value)

    def _provider_name(self) -> str | None:
        chosen = self._provider()
        return chosen if chosen is not None else self.parley.settings.chat.provider

    @work(group="settings-models", exclusive=True, exit_on_error=False)
    async def load_models(self) -> None:
        """Fill the picker with the provider's models (configured ones first)."""
        picker = self.query_one("#settings-models", OptionList)
        picker.clear_options()
        engine = await self.parley.ready_engine()
        name = self._provider_name()
        configured = set(self.parley.settings.providers[name].models) \
            if name in self.parley.settings.providers else set()
        try:
            models = await engine.chat.models(name)
        except Exception as exc:  # the server may be down: typing a name still works
            picker.add_option(Option(f"the model list is unavailable: "
                                     f"{getattr(exc, 'message', exc)}", disabled=True))
            models = sorted(configured)
        for model in models:
            picker.add_option(Option(f"{model}  · configured" if model in configured else model,
                                     id=model))
        self.query_one("#settings-model", Input).suggester = SuggestFromList(
            models, case_sensitive=False)
        self.show_window()

    @work(group="settings-window", exclusive=True, exit_on_error=False)
    async def show_window(self) -> None:
        """The chosen model's context window, as its server tells it."""
        note = self.query_one("#settings-window", Static)
        engine: Engine = await self.parley.ready_engine()
        model = self.query_one("#settings-model", Input).value.strip() or \
            (self.parley.settings.chat.model if self._provider() is None else None)
        if not model:
            note.update("")
            return
        try:
            window = await engine.chat.context_window(self._provider_name(), model)
        except Exception as exc:
            note.update(f"context window unknown: {getattr(exc, 'message', exc)}")
            return
        note.update(window_text(window.tokens, window.source))

    @on(Select.Changed, "#settings-provider")
    def _provider_changed(self) -> None:
        if self.is_mounted:
            self.load_models()

    @on(OptionList.OptionSelected, "#settings-models")
    def _model_picked(self, event: OptionList.OptionSelected) -> None:
        if event.option.id:
            self.query_one("#settings-model", Input).value = event.option.id
            self.show_window()

    @on(Input.Submitted, "#settings-model")
    def _model_typed(self) -> None:
        self.show_window()

    @staticmethod
    def _collections_label(names: Any) -> str:
        chosen = ", ".join(names) if names else "all of them"
        return f"Collections (none ticked: all) · will search: {chosen}"

    @on(SelectionList.SelectedChanged, "#settings-collections")
    def _collections_changed(self, event: SelectionList.SelectedChanged) -> None:
        self.query_one("#settings-collections-label", Label).update(
            self._collections_label(event.selection_list.selected))

    # -- saving ---------------------------------------------------------------------------------
    def changes(self) -> dict[str, Any]:
        """What the form says, as ``engine.chat.configure`` takes it (unchanged: left out)."""
        from engine.session_setup.settings import UNSET

        s, params = self.summary, self.summary.params or {}
        provider = self._provider()
        model = self.query_one("#settings-model", Input).value.strip() or None
        system = self.query_one("#settings-system", TextArea).text.strip()
        collections = list(self.query_one("#settings-collections", SelectionList).selected)
        rag = self.query_one("#settings-rag", Checkbox).value
        configured_rag = self.parley.settings.chat.rag
        typed = {name: self.query_one(f"#settings-{name}", Input).value.strip()
                 for name in ("top_k", "temperature", "max_tokens")}
        changed = {k: v for k, v in typed.items()
                   if v != ("" if params.get(k) is None else str(params[k]))}
        return {
            "provider": provider if provider != s.provider else UNSET,
            "model": model if model != s.model or provider != s.provider else UNSET,
            "system_prompt": system if system != (s.system_prompt or "") else UNSET,
            "collections": collections if set(collections) != set(s.collections) else UNSET,
            "rag": rag if rag != (configured_rag if s.rag is None else s.rag) else UNSET,
            "params": changed or None,
            "tools": self.query_one(ToolPicker).value(),
        }

    def action_save(self) -> None:
        self.save()

    @work(group="settings-save", exclusive=True, exit_on_error=False)
    async def save(self) -> None:
        """Store the settings; a refusal (unknown model, bad value) is shown here."""
        error = self.query_one("#settings-error", Static)
        engine = await self.parley.ready_engine()
        try:
            summary, warnings = await engine.chat.configure(self.summary.id, **self.changes())
        except Exception as exc:
            message = getattr(exc, "one_line", None)
            error.update(message() if message else f"{type(exc).__name__}: {exc}")
            error.display = True
            return
        for warning in warnings:
            self.notify(warning, severity="warning", timeout=8)
        self.dismiss(summary)

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self.save()
        else:
            self.dismiss(None)
