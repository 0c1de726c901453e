"""Configuration: sources and their precedence, the example file, errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.config import effective_items, load_settings
from engine.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]

ISSUE_EXAMPLE = """\
chat:
  provider: test
  model: fake-chat
providers:
  test:
    kind: openai
    base_url: http://127.0.0.1:8080/v1
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_config_example_loads_and_documents_every_key(parley_home: Path) -> None:
    settings = load_settings(REPO / "config.example.yaml")
    example = (REPO / "config.example.yaml").read_text()
    for key, _value, _source in effective_items(load_settings()):
        leaf = key.rsplit(".", 1)[-1]
        if key.startswith("providers."):
            continue
        assert f"{leaf}:" in example, f"config.example.yaml does not document {key}"
    assert settings.providers["local"].kind == "openai"


def test_minimal_provider_config_is_valid(parley_home: Path) -> None:
    settings = load_settings(write(parley_home / "c.yaml", ISSUE_EXAMPLE))
    assert settings.chat.provider == "test"
    assert settings.providers["test"].base_url == "http://127.0.0.1:8080/v1"


def test_precedence_flag_over_env_over_file_over_default(
        parley_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(parley_home / "c.yaml", "retrieval:\n  top_k: 3\n  candidates: 33\n"
                 "chat:\n  rag: false\n")
    monkeypatch.setenv("PARLEY_RETRIEVAL__TOP_K", "4")
    monkeypatch.setenv("PARLEY_RETRIEVAL__RRF_K", "10")
    settings = load_settings(path, {"retrieval": {"top_k": 5}})
    assert settings.retrieval.top_k == 5
    assert settings.retrieval.rrf_k == 10
    assert settings.retrieval.candidates == 33
    assert settings.chat.rag is False
    assert settings.retrieval.chunk_tokens == 200
    assert settings.sources["retrieval.top_k"] == "flag"
    assert settings.sources["retrieval.rrf_k"] == "env"
    assert settings.sources["retrieval.candidates"] == "file"
    assert "retrieval.chunk_tokens" not in settings.sources


def test_config_file_from_env_and_default_location(
        parley_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(parley_home / "config.yaml", "ui:\n  theme: nord\n")
    assert load_settings().ui.theme == "nord"
    other = write(parley_home / "other.yaml", "ui:\n  theme: gruvbox\n")
    monkeypatch.setenv("PARLEY_CONFIG", str(other))
    assert load_settings().ui.theme == "gruvbox"
    assert load_settings().config_path == other


def test_parley_home_places_database_and_key(parley_home: Path) -> None:
    settings = load_settings()
    assert settings.database_url().endswith(str(parley_home / "parley.db"))
    assert settings.key_file_path() == parley_home / "key"


@pytest.mark.parametrize(("text", "fragment"), [
    ("chat:\n  modle: x\n", "unknown config key 'chat.modle'"),
    ("databse:\n  url: x\n", "unknown config key 'databse'"),
    ("retrieval:\n  top_k: lots\n", "invalid value for 'retrieval.top_k'"),
    ("retrieval:\n  top_k: 0\n", "invalid value for 'retrieval.top_k'"),
    ("providers:\n  x:\n    kind: telepathy\n", "invalid value for 'providers.x.kind'"),
    ("chat:\n  provider: nowhere\n", "chat.provider 'nowhere' is not defined"),
    ("chat: [1, 2\n", "at line"),
    ("- just\n- a list\n", "top level must be a mapping"),
])
def test_bad_config_names_the_key(parley_home: Path, text: str, fragment: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_settings(write(parley_home / "bad.yaml", text))
    assert fragment in str(info.value)
    assert info.value.hint
    assert info.value.exit_code == 2


def test_bad_environment_values(parley_home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PARLEY_RETRIEVAL__TOP_K", "many")
    with pytest.raises(ConfigError, match="retrieval.top_k.*from env"):
        load_settings()
    monkeypatch.delenv("PARLEY_RETRIEVAL__TOP_K")
    monkeypatch.setenv("PARLEY_RETREIVAL__TOP_K", "3")
    with pytest.raises(ConfigError, match="PARLEY_RETREIVAL__TOP_K"):
        load_settings()


def test_missing_explicit_config_file(parley_home: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(parley_home / "nope.yaml")


def test_secrets_are_masked(parley_home: Path) -> None:
    path = write(parley_home / "c.yaml",
                 "providers:\n  p:\n    base_url: http://x/v1\n    api_key: sk-secret-123\n")
    settings = load_settings(path)
    assert settings.providers["p"].api_key.get_secret_value() == "sk-secret-123"
    shown = dict((k, v) for k, v, _ in effective_items(settings))
    assert shown["providers.p.api_key"] == "**********"
    assert "sk-secret-123" not in repr(settings)
