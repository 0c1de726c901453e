"""Which command opens a cited source, and how a missing file or program is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.errors import ParleyError
from tui.open_source import OpenCommand, SourceOpener, open_command


def nothing_installed(name: str) -> str | None:
    return None


def only(*names: str):  # type: ignore[no-untyped-def]
    return lambda name: f"/usr/bin/{name}" if name in names else None


@pytest.mark.parametrize(("editor", "argv"), [
    ("vim", ("vim", "+12", "/d/a.md")),
    ("nvim -u NONE", ("nvim", "-u", "NONE", "+12", "/d/a.md")),
    ("emacs -nw", ("emacs", "-nw", "+12", "/d/a.md")),
    ("code --wait", ("code", "--wait", "-g", "/d/a.md:12")),
    ("hx", ("hx", "/d/a.md:12")),
    ("subl", ("subl", "/d/a.md:12")),
])
def test_the_editor_opens_at_the_line(editor: str, argv: tuple[str, ...]) -> None:
    command = open_command("/d/a.md", line=12, environ={"EDITOR": editor},
                           which=nothing_installed, platform="linux")
    assert command == OpenCommand(argv, terminal=True)


def test_visual_wins_over_editor_and_no_line_means_no_jump() -> None:
    command = open_command("/d/a.md", environ={"VISUAL": "nano", "EDITOR": "vim"},
                           which=nothing_installed)
    assert command.argv == ("nano", "/d/a.md")


def test_without_an_editor_the_pager_opens_at_the_line() -> None:
    command = open_command("/d/a.txt", line=40, environ={}, which=only("less"))
    assert command.argv == ("less", "+40g", "/d/a.txt") and command.terminal
    assert open_command("/d/a.txt", line=40, environ={"PAGER": "more"},
                        which=nothing_installed).argv == ("more", "/d/a.txt")


def test_a_pdf_opens_in_a_viewer_at_the_page() -> None:
    command = open_command("/d/b.pdf", page=7, environ={"EDITOR": "vim"},
                           which=only("zathura", "xdg-open"), platform="linux")
    assert command == OpenCommand(("zathura", "--page=7", "/d/b.pdf"), terminal=False)
    fallback = open_command("/d/b.pdf", page=7, environ={}, which=only("xdg-open"),
                            platform="linux")
    assert fallback.argv == ("xdg-open", "/d/b.pdf") and not fallback.terminal
    assert "page 7" in fallback.note
    mac = open_command("/d/b.pdf", page=1, environ={}, which=only("open"), platform="darwin")
    assert mac.argv == ("open", "/d/b.pdf") and mac.note == ""


def test_the_configured_command_wins_and_fills_placeholders() -> None:
    command = open_command("/d/a.md", line=3, page=None, configured="myedit --at {line} {path}",
                           environ={"EDITOR": "vim"}, which=nothing_installed)
    assert command.argv == ("myedit", "--at", "3", "/d/a.md")
    plain = open_command("/d/a.md", line=3, configured="vim", environ={},
                         which=nothing_installed)
    assert plain.argv == ("vim", "+3", "/d/a.md")


def test_nothing_to_open_with_is_a_clear_error() -> None:
    with pytest.raises(ParleyError) as caught:
        open_command("/d/a.md", line=1, environ={}, which=nothing_installed, platform="linux")
    assert "$EDITOR" in (caught.value.hint or "")


def test_a_source_that_is_gone_is_reported_and_nothing_runs(tmp_path: Path) -> None:
    ran: list[OpenCommand] = []
    opener = SourceOpener(runner=ran.append)
    with pytest.raises(ParleyError) as caught:
        opener.open(None, str(tmp_path / "moved.md"), line=1)  # type: ignore[arg-type]
    assert "no longer there" in caught.value.message and not ran


def test_a_program_that_cannot_start_is_reported(tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "a.md"
    source.write_text("x")
    monkeypatch.setenv("EDITOR", str(tmp_path / "no-such-editor"))

    def fail(command: OpenCommand) -> None:
        raise FileNotFoundError(2, "No such file or directory")

    class Headless:
        def suspend(self) -> object:
            from textual.app import SuspendNotSupported

            raise SuspendNotSupported("headless")

    with pytest.raises(ParleyError) as caught:
        SourceOpener(runner=fail).open(Headless(), str(source), line=1)  # type: ignore[arg-type]
    assert "cannot run" in caught.value.message
