"""The first frame's settings read without pydantic (``engine.config.early``): the same
values as the validated settings, or None (validate first) wherever they could differ."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from pathlib import Path

import pytest

from engine.config import UISettings, load_settings
from engine.config.early import DEFAULTS, EarlyUI, read_early
from engine.errors import ConfigError
from tests.conftest import REPO_ROOT


def test_the_defaults_are_those_of_the_ui_section() -> None:
    validated = UISettings()
    assert set(DEFAULTS) == set(UISettings.model_fields) == {
        f.name for f in dataclasses.fields(EarlyUI)}
    for name in UISettings.model_fields:
        assert getattr(EarlyUI(), name) == getattr(validated, name), name


@pytest.mark.parametrize("text", [
    "",
    "retrieval:\n  top_k: 3\n",
    "ui:\n  theme: nord\n  show_sidebar: false\n  enter_sends: false\n  editor: vim +{line}\n",
    "ui:\n  keys:\n    chat:\n      new_session: ctrl+n\n      regenerate: [f6, ctrl+r]\n",
    "ui:\n  keys:\n    app.help: f1\n",
    "ui: {}\n",
])
def test_a_plain_file_gives_the_validated_values_and_origins(parley_home: Path,
                                                              text: str) -> None:
    (parley_home / "config.yaml").write_text(text)
    early = read_early()
    validated = load_settings()
    assert early is not None
    for name in UISettings.model_fields:
        assert getattr(early.ui, name) == getattr(validated.ui, name), name
    assert early.sources == validated.sources
    assert early.config_path == validated.config_path == parley_home / "config.yaml"


@pytest.mark.parametrize("text", [
    "ui:\n  show_sidebar: 'yes'\n",    # pydantic would take it as True
    "ui:\n  theme: 3\n",              # refused by pydantic: the full check says how
    "ui:\n  colour: red\n",           # an unknown key: named by the full check
    "ui:\n  keys: ctrl+n\n",
    "ui:\n  keys:\n    chat.new_session: 5\n",
    "ui: null\n",
    "ui: [a]\n",
])
def test_a_value_pydantic_would_coerce_or_refuse_means_validate_first(
        parley_home: Path, text: str) -> None:
    (parley_home / "config.yaml").write_text(text)
    assert read_early() is None


def test_settings_in_the_environment_or_ui_flags_mean_validate_first(parley_home: Path) -> None:
    assert read_early(environ={"PARLEY_UI__THEME": "nord"}) is None
    assert read_early(environ={"PARLEY_RETRIEVAL__TOP_K": "3"}) is None
    assert read_early(overrides={"ui": {"theme": "nord"}}) is None
    # reserved variables are not settings; the database and user flags do not touch ui
    home = {"PARLEY_HOME": str(parley_home), "PARLEY_KEY": "x"}
    assert read_early(overrides={"database": {"url": "sqlite:///x.db"}, "user": "a"},
                      environ=home) is not None


def test_file_errors_are_the_same_as_validation(parley_home: Path) -> None:
    missing = parley_home / "missing.yaml"
    broken = parley_home / "broken.yaml"
    broken.write_text("retrieval: [\n")
    for path in (missing, broken):
        with pytest.raises(ConfigError) as early:
            read_early(path)
        with pytest.raises(ConfigError) as full:
            load_settings(path)
        assert early.value.message == full.value.message
        assert early.value.exit_code == 2


def test_reading_the_first_frame_keys_imports_no_pydantic(parley_home: Path) -> None:
    (parley_home / "config.yaml").write_text("ui:\n  theme: nord\n")
    code = ("import sys\nfrom engine.config.early import read_early\n"
            "assert read_early().ui.theme == 'nord'\n"
            "print(sorted(m for m in ('pydantic', 'click', 'sqlalchemy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
