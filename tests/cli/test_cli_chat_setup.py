"""Chat setup from the command line, as scripts meet it: what a chat searches (and the note
that says so), 'sessions set' and 'show', 'personas', 'ask -a' with good and bad files.
The steps of each scenario run the command in-process; the exits a user meets on bad input
run the real command in a subprocess. The test model server on 127.0.0.1, both backends."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Settings
from tests.cli.test_cli_foundation import parley, steps
from tests.conftest import migrate
from tests.engine.chat_support import citing
from tests.support.openai_server import OpenAITestServer

CONFIG = """\
chat:
  provider: test
  model: test-model
embedding:
  provider: test
  model: test-embedding
providers:
  test:
    base_url: {url}
    max_retries: 0
personas:
  tea-expert:
    description: Answers about tea
    model: big-model
    system_prompt: You know everything about tea.
    collections: [work]
    params: {{temperature: 0.1}}
"""


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply=citing("tea", "Green tea steeps two minutes [{n}]."),
                          models=["test-model", "big-model", "test-embedding"]) as srv:
        yield srv


@pytest.fixture
async def home(settings: Settings, parley_home: Path, server: OpenAITestServer) -> Path:
    (parley_home / "config.yaml").write_text(CONFIG.format(url=server.base_url))
    await migrate(settings)
    return parley_home


@pytest.fixture
def run(home: Path, database_url: str) -> Any:
    """The command in this process, or with ``real=True`` in a subprocess (for the exit
    codes a user meets on bad input)."""
    def call(*args: str, stdin: str | None = None,
             real: bool = False) -> subprocess.CompletedProcess[str]:
        return (parley if real else steps)("--db", database_url, *args, home=home, stdin=stdin)

    return call


def ingest_work(run: Any, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "tea.md").write_text("# Tea\n\nGreen tea steeps for two minutes at 80 degrees.\n")
    done = run("ingest", str(work), "--collection", "work")
    assert done.returncode == 0, done.stderr


def test_a_chat_searches_every_collection_and_says_so_once(run: Any, tmp_path: Path) -> None:
    empty = run("ask", "--new", "How long does tea steep?")
    assert empty.returncode == 0, empty.stderr
    assert ("parley: nothing is indexed yet: add documents with: parley ingest PATH "
            "--collection NAME") in empty.stderr

    ingest_work(run, tmp_path)  # into 'work', not 'default': no extra step is needed
    first = run("ask", "--new", "How long does green tea steep?")
    assert first.returncode == 0, first.stderr
    assert "parley: searching all your collections (1): work" in first.stderr
    assert first.stdout.rstrip().endswith("tea.md L1-3")
    again = run("ask", "And at what temperature?")
    assert again.returncode == 0 and "searching" not in again.stderr


def test_sessions_set_changes_what_the_next_question_uses(run: Any, tmp_path: Path,
                                                          server: OpenAITestServer) -> None:
    ingest_work(run, tmp_path)
    session = json.loads(run("ask", "--new", "--json", "Tea?").stdout)["session_id"]
    changed = run("sessions", "set", str(session), "--model", "big-model", "--system", "-",
                  "--collection", "work", "--param", "temperature=0.2",
                  "--param", "top_k=2", stdin="Be brief.\nUse British spelling.\n")
    assert changed.returncode == 0, changed.stderr
    assert "model: big-model\n" in changed.stdout and "temperature: 0.2\n" in changed.stdout
    run("ask", "--session", str(session), "Tea again?")
    request = server.chat_requests[-1].json
    assert request["model"] == "big-model" and request["temperature"] == 0.2
    assert request["messages"][0]["content"] == "Be brief.\nUse British spelling."

    shown = json.loads(run("sessions", "show", str(session), "--json").stdout)
    settings = shown["settings"]
    assert settings["model"] == {"value": "big-model", "from": "session"}
    assert settings["collections"]["value"] == ["work"]
    assert settings["top_k"] == {"value": 2, "from": "session"}
    assert settings["max_tokens"]["from"] == "config"
    text = run("sessions", "show", str(session)).stdout
    assert "system prompt: Be brief.\n    Use British spelling." in text
    assert "collections: work\n" in text and "rag: on  (config)" in text

    assert run("sessions", "set", str(session), "--no-rag", "--all-collections").returncode == 0
    run("ask", "--session", str(session), "Tea once more?")
    assert "Sources:" not in server.chat_requests[-1].json["messages"][-1]["content"]


BAD_SETTINGS = [  # the first of each exit code through the real command
    (["--model", "no-such-model"], 1, "model 'no-such-model' is not on provider 'test'"),
    (["--param", "temperature=9"], 2, "invalid value for parameter temperature"),
    (["--param", "colour=blue"], 2, "unknown parameter colour"),
    (["--param", "temperature"], 2, "expected NAME=VALUE"),
    (["--collection", "missing"], 1, "no collection named missing"),
    (["--provider", "elsewhere"], 2, "provider 'elsewhere' is not defined"),
    ([], 2, "nothing to change"),
]


def test_sessions_set_refuses_bad_input_in_one_line_and_keeps_the_session(run: Any) -> None:
    session = json.loads(run("ask", "--new", "--json", "Hi").stdout)["session_id"]
    for n, (args, code, words) in enumerate(BAD_SETTINGS):
        result = run("sessions", "set", str(session), *args, real=n < 2)
        assert result.returncode == code, (args, result.stderr)
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    settings = json.loads(run("sessions", "show", str(session), "--json").stdout)["settings"]
    assert settings["model"] == {"value": "test-model", "from": "config"}
    assert settings["temperature"]["from"] == "config"


def test_personas_from_the_config_file_and_saved_from_a_session(
        run: Any, tmp_path: Path, server: OpenAITestServer) -> None:
    ingest_work(run, tmp_path)
    listed = run("personas", "list")
    assert listed.returncode == 0 and listed.stdout.startswith("tea-expert")
    answer = run("ask", "--persona", "tea-expert", "--json", "How long does tea steep?")
    assert answer.returncode == 0, answer.stderr
    assert "parley: searching: work" in answer.stderr
    request = server.chat_requests[-1].json
    assert request["model"] == "big-model" and request["temperature"] == 0.1
    session = json.loads(answer.stdout)["session_id"]

    saved = run("personas", "save", "brief", "--from-session", str(session))
    assert saved.returncode == 0, saved.stderr
    shown = json.loads(run("personas", "show", "brief", "--json").stdout)
    assert (shown["origin"], shown["model"], shown["collections"]) == ("saved", "big-model",
                                                                       ["work"])
    assert run("personas", "save", "brief", "--from-session", str(session),
               real=True).returncode == 2
    assert run("personas", "delete", "tea-expert", "--yes").returncode == 2
    assert run("personas", "delete", "brief", "--yes").returncode == 0
    missing = run("ask", "--persona", "brief", "Hi", real=True)
    assert missing.returncode == 1 and "no persona named 'brief'" in missing.stderr


def test_a_persona_with_a_missing_provider_or_collection_is_named(
        run: Any, home: Path, server: OpenAITestServer) -> None:
    config = home / "config.yaml"
    config.write_text(CONFIG.format(url=server.base_url))  # 'work' is not ingested here
    result = run("ask", "--persona", "tea-expert", "Hi", real=True)
    assert result.returncode == 1
    assert "persona 'tea-expert' names collection 'work', which does not exist" in result.stderr
    config.write_text(config.read_text() + "  broken:\n    provider: nowhere\n")
    result = run("personas", "list", real=True)
    assert result.returncode == 2
    assert "persona 'broken' names provider 'nowhere'" in result.stderr


def test_ask_with_attachments(run: Any, tmp_path: Path, server: OpenAITestServer) -> None:
    notes = tmp_path / "notes.txt"
    notes.write_text("Groceries.\n\nOolong tea is rolled by hand.\n")
    result = run("ask", "--new", "--no-rag", "-a", str(notes), "How is oolong tea made?")
    assert result.returncode == 0, result.stderr
    assert result.stdout.rstrip().endswith(f"[1] {notes} L1-3")
    piped = run("ask", "--new", "--json", "--no-rag", "-a", "-", "What tea is this?",
                stdin="Sencha is a Japanese green tea.\n")
    assert piped.returncode == 0, piped.stderr
    data = json.loads(piped.stdout)
    assert data["citations"][0]["path"] == "stdin"
    shown = run("sessions", "show", str(data["session_id"])).stdout
    assert "attached: stdin (text, 1 line)" in shown


def test_bad_attachments_are_refused_in_one_line_and_nothing_is_stored(
        run: Any, tmp_path: Path, server: OpenAITestServer) -> None:
    binary = tmp_path / "photo.bin"
    binary.write_bytes(bytes(range(256)) * 40)
    huge = tmp_path / "book.txt"
    huge.write_text("Tea leaves are picked by hand in the morning. " * 6000)
    cases = [  # the first of each exit code through the real command
             (["-a", str(binary)], 2, f"cannot attach {binary}: it is binary"),
             (["-a", str(tmp_path / "nope.txt")], 2, "no such file"),
             (["-a", str(tmp_path)], 2, "it is a directory"),
             (["-a", str(huge)], 1, f"ingest it instead and ask about it: parley ingest {huge}"),
             (["-a", "-"], 2, "the question must be an argument")]
    for n, (args, code, words) in enumerate(cases):
        result = run("ask", "--new", *args, *(["Question?"] if args[-1] != "-" else []),
                     stdin="", real=n in (0, 3))
        assert result.returncode == code, (args, result.stderr)
        assert words in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert server.chat_requests == []
    assert run("sessions", "list", "--json").stdout.strip() == "[]"
