"""Modal dialogs: the error dialog for the unexpected, a yes/no confirmation, a text input.

Each dialog is dismissed with its answer (``push_screen(dialog, callback)`` or
``await push_screen_wait``): the caller decides what happens next.
"""

from __future__ import annotations

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static, TextArea


class ErrorDialog(ModalScreen[None]):
    """Something went wrong that Parley did not expect. The app keeps running.

    Shows the message and the traceback (selectable, and copied with ``c``) so the user
    can report it.
    """

    BINDINGS = [
        Binding("escape,enter", "dismiss", "Close", id="error.close"),
        Binding("c", "copy", "Copy details", id="error.copy"),
    ]

    def __init__(self, title: str, message: str, details: str = "") -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.message = message
        self.details = details

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box -error"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.message, classes="dialog-message", markup=False)
            if self.details:
                yield TextArea(self.details, read_only=True, classes="dialog-details",
                               soft_wrap=False, show_line_numbers=False)
            yield Static("The app is still running. Press c to copy the details, Esc to "
                         "close.", classes="dialog-hint")
            with Horizontal(classes="dialog-buttons"):
                yield Button("Copy details", id="copy")
                yield Button("Close", variant="primary", id="close")

    def on_mount(self) -> None:
        self.query_one("#close", Button).focus()

    def action_copy(self) -> None:
        self.app.copy_to_clipboard(f"{self.message}\n\n{self.details}".strip())
        self.notify("Error details copied", timeout=2)

    @on(Button.Pressed, "#copy")
    def _copy(self) -> None:
        self.action_copy()

    @on(Button.Pressed, "#close")
    def _close(self) -> None:
        self.dismiss(None)


class ConfirmDialog(ModalScreen[bool]):
    """Ask before doing something that cannot be undone. Dismissed with True or False."""

    BINDINGS = [
        Binding("escape,n", "answer(False)", "Cancel", id="confirm.cancel"),
        Binding("y", "answer(True)", "Confirm", id="confirm.confirm"),
    ]

    def __init__(self, title: str, message: str, *, confirm: str = "Delete") -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.message = message
        self.confirm = confirm

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box -warning"):
            yield Label(self.title_text, classes="dialog-title")
            yield Static(self.message, classes="dialog-message", markup=False)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel (n)", id="cancel")
                yield Button(f"{self.confirm} (y)", variant="error", id="confirm")

    def on_mount(self) -> None:
        self.query_one("#cancel", Button).focus()

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "confirm")


class TextDialog(ModalScreen[str | None]):
    """Ask for one line of text (a session title, a path). Dismissed with it, or None."""

    BINDINGS = [Binding("escape", "cancel", "Cancel", id="text.cancel")]

    def __init__(self, title: str, value: str = "", *, placeholder: str = "",
                 action: str = "Save") -> None:
        super().__init__(classes="dialog")
        self.title_text = title
        self.value = value
        self.placeholder = placeholder
        self.action_label = action

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog-box"):
            yield Label(self.title_text, classes="dialog-title")
            yield Input(self.value, placeholder=self.placeholder, id="dialog-input",
                        select_on_focus=True)
            with Horizontal(classes="dialog-buttons"):
                yield Button("Cancel", id="cancel")
                yield Button(self.action_label, variant="primary", id="ok")

    def on_mount(self) -> None:
        self.query_one(Input).focus()

    def action_cancel(self) -> None:
        self.dismiss(None)

    @on(Input.Submitted)
    def _submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    @on(Button.Pressed)
    def _pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "ok":
            self.dismiss(self.query_one(Input).value.strip() or None)
        else:
            self.dismiss(None)
