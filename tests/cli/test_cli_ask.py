"""``parley ask`` and ``parley usage`` as scripts run them: the real command in a subprocess
for the issue's example, errors, usage errors and Ctrl+C, the same command in-process for
the other steps; the OpenAI-compatible test server on 127.0.0.1, both backends."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from engine import Engine, Settings
from tests.cli.test_cli_foundation import REPO, parley, steps
from tests.conftest import migrate
from tests.engine.chat_support import citing, sources_of, write_corpus
from tests.support.openai_server import OpenAITestServer

# The configuration example of the foundation issue, as written.
ISSUE_EXAMPLE = """\
chat:
  provider: test
  model: fake-chat
providers:
  test:
    kind: openai
    base_url: http://127.0.0.1:8080/v1
"""
ANSWER = "The capacitor needs 1.21 gigawatts [{n}]."


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    options: dict[str, Any] = {"models": ["fake-chat"], "usage": (250, 9),
                               "reply": citing("gigawatts", ANSWER)}
    try:  # the example's own port when it is free
        srv = OpenAITestServer(port=8080, **options).start()
    except OSError:
        srv = OpenAITestServer(**options).start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
async def home(settings: Settings, parley_home: Path, server: OpenAITestServer,
               tmp_path: Path) -> Path:
    """PARLEY_HOME with the example config (pointing at the server) and the test library
    ingested into the database under test."""
    (parley_home / "config.yaml").write_text(
        ISSUE_EXAMPLE.replace("8080", str(server.port)), encoding="utf-8")
    await migrate(settings)
    async with Engine(settings) as engine:
        result = await engine.library.run_ingest([write_corpus(tmp_path / "docs")])
        assert result.indexed == 3
    return parley_home


@pytest.fixture
def ask(home: Path, database_url: str) -> Any:
    """``parley ask`` run in this process; ``ask.real`` runs it in a subprocess, for the
    exits a user meets (errors, usage errors) and the issue's own example."""
    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return steps("--db", database_url, "ask", *args, home=home, stdin=stdin)

    def real(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        return parley("--db", database_url, "ask", *args, home=home, stdin=stdin)

    run.real = real  # type: ignore[attr-defined]
    return run


async def stored(settings: Settings) -> list[tuple[str, str, str]]:
    """(role, status, content) of every stored message, oldest first."""
    from sqlalchemy import select

    from engine.db import models as m

    async with Engine(settings) as engine:
        assert engine.db is not None
        async with engine.db.read() as s:
            rows = await s.scalars(select(m.Message).order_by(m.Message.id))
            return [(r.role, r.status, r.content) for r in rows]


def test_ask_new_json_works_as_the_issue_shows(ask: Any, server: OpenAITestServer) -> None:
    result = ask.real("--new", "--json", "How much power does the flux capacitor need?")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert set(data) == {"session_id", "message_id", "status", "model", "answer", "citations",
                         "tool_runs", "usage"}
    assert data["tool_runs"] == []  # tools are off by default
    assert (data["status"], data["model"]) == ("complete", "fake-chat")
    assert "1.21 gigawatts" in data["answer"]
    (citation,) = data["citations"]
    assert set(citation) == {"marker", "path", "page", "line_start", "line_end",
                             "document_id", "chunk_id", "score", "snippet"}
    assert citation["path"].endswith("flux-manual.pdf")
    assert (citation["page"], citation["line_start"], citation["line_end"]) == (2, 1, 3)
    assert f"[{citation['marker']}]" in data["answer"]
    assert set(data["usage"]) == {"prompt_tokens", "completion_tokens", "embedding_tokens",
                                  "cost", "estimated"}
    assert (data["usage"]["prompt_tokens"], data["usage"]["completion_tokens"]) == (250, 9)
    assert data["usage"]["estimated"] is False and data["usage"]["cost"] == 0.0
    assert server.chat_requests[-1].json["model"] == "fake-chat"


def test_plain_output_streams_the_answer_then_the_sources(ask: Any) -> None:
    result = ask("How much power does the flux capacitor need?")
    assert result.returncode == 0, result.stderr
    answer, sources = result.stdout.split("\n\n")
    assert answer.startswith("The capacitor needs 1.21 gigawatts [")
    marker = answer.split("[")[1].split("]")[0]
    assert sources.startswith(f"[{marker}] ") and sources.endswith("flux-manual.pdf p.2 L1-3\n")
    # the first question of a session says, once, what it searches; nothing else
    assert result.stderr == "parley: searching all your collections (1): default\n"


def test_stream_json_prints_one_event_per_line(ask: Any) -> None:
    result = ask("--stream-json", "--new", "flux capacitor power?")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    kinds = [e["type"] for e in events]
    assert kinds[-3:] == ["sources", "usage", "done"]
    assert set(kinds[:-3]) == {"delta"} and len(kinds) > 4
    text = "".join(e["text"] for e in events if e["type"] == "delta")
    assert "1.21 gigawatts" in text
    assert events[-3]["citations"][0]["page"] == 2 and events[-3]["unknown_markers"] == []
    assert (events[-2]["prompt_tokens"], events[-2]["completion_tokens"]) == (250, 9)
    assert events[-1]["status"] == "complete" and events[-1]["error"] is None


def test_question_on_stdin_without_rag_continues_the_session(
        ask: Any, server: OpenAITestServer) -> None:
    first = json.loads(ask("--new", "--json", "flux capacitor power?").stdout)
    result = ask("--json", "--no-rag", stdin="And is that a lot?\n")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["session_id"] == first["session_id"] and data["citations"] == []
    request = server.chat_requests[-1].json
    assert sources_of(request) == {}
    assert request["messages"][-1]["content"] == "And is that a lot?"
    assert request["messages"][-3]["content"] == "flux capacitor power?"


async def test_a_refused_key_exits_1_with_a_hint_and_keeps_the_question(
        ask: Any, server: OpenAITestServer, settings: Settings) -> None:
    server.api_key = "sk-needed"
    result = ask.real("--new", "Will this work?")
    assert result.returncode == 1
    note, error = result.stderr.splitlines()  # what the new session searches, then the error
    assert note == "parley: searching all your collections (1): default"
    assert error.startswith("parley: error: ") and "401" in error
    assert "api_key" in result.stderr  # the hint says what to set
    assert await stored(settings) == [("user", "complete", "Will this work?"),
                                      ("assistant", "error", "")]


async def test_a_hangup_prints_what_arrived_and_stores_it_interrupted(
        ask: Any, server: OpenAITestServer, settings: Settings) -> None:
    server.reply = "Half of this answer arrives before the line drops."
    server.hangup_after = 2
    result = ask.real("--new", "--json", "Tell me")
    assert result.returncode == 1
    data = json.loads(result.stdout)
    assert data["status"] == "interrupted" and data["answer"]
    assert server.reply.startswith(data["answer"])
    assert "parley: error: " in result.stderr
    assert (await stored(settings))[-1] == ("assistant", "interrupted", data["answer"])


def test_bad_arguments_are_usage_errors(ask: Any, server: OpenAITestServer) -> None:
    assert ask.real("--json", "--stream-json", "q").returncode == 2
    empty = ask.real(stdin="   \n")
    assert empty.returncode == 2 and "empty" in empty.stderr
    missing = ask.real("--collection", "nope", "q")
    assert missing.returncode == 1 and "no collection named nope" in missing.stderr
    assert server.chat_requests == []


def test_regenerate_edit_and_switch_branches_from_the_command_line(
        ask: Any, home: Path, database_url: str, server: OpenAITestServer) -> None:
    def sessions(*args: str) -> subprocess.CompletedProcess[str]:
        return steps("--db", database_url, "sessions", *args, home=home)

    server.reply = "First answer."
    first = json.loads(ask("--new", "--json", "--no-rag", "Which answer?").stdout)
    sid = str(first["session_id"])
    server.reply = "Second answer."
    again = ask("--regenerate", "--json", "--session", sid)
    assert again.returncode == 0, again.stderr
    second = json.loads(again.stdout)
    assert second["answer"] == "Second answer." and second["session_id"] == first["session_id"]
    assert "Which answer?" in server.chat_requests[-1].json["messages"][-1]["content"]

    shown = json.loads(sessions("show", sid, "--json").stdout)
    question, answer = shown["messages"]
    assert question["alternatives"] == []
    assert answer["alternatives"] == [first["message_id"], second["message_id"]]
    text = sessions("show", sid).stdout
    assert f"alternatives: {first['message_id']}" in text

    switched = sessions("switch", sid, str(first["message_id"]))
    assert switched.returncode == 0, switched.stderr
    shown = json.loads(sessions("show", sid, "--json").stdout)
    assert [msg["content"] for msg in shown["messages"]] == ["Which answer?", "First answer."]

    server.reply = "Edited answer."
    edited = json.loads(ask("--edit", "--json", "Which answer, really?").stdout)  # latest
    assert edited["answer"] == "Edited answer."
    shown = json.loads(sessions("show", sid, "--json").stdout)
    assert [msg["content"] for msg in shown["messages"]] == ["Which answer, really?",
                                                             "Edited answer."]
    assert len(shown["messages"][0]["alternatives"]) == 2

    missing = parley("--db", database_url, "sessions", "switch", sid, "999999", home=home)
    assert missing.returncode == 1 and "no message 999999" in missing.stderr


def test_regenerate_and_edit_refuse_what_cannot_apply(ask: Any, server: OpenAITestServer,
                                                      database_url: str, home: Path) -> None:
    none_yet = ask.real("--regenerate")
    assert none_yet.returncode == 2 and "no session yet" in none_yet.stderr
    for args, says in ((["--regenerate", "--edit", "q"], "cannot be combined"),
                       (["--regenerate", "--new"], "not with --new"),
                       (["--regenerate", "a question"], "takes no question"),
                       (["--edit", "--collection", "docs", "q"], "session's collections")):
        result = ask(*args)
        assert result.returncode == 2 and says in result.stderr, (args, result.stderr)
    assert server.chat_requests == []


async def test_ctrl_c_keeps_the_partial_answer(home: Path, database_url: str,
                                               server: OpenAITestServer,
                                               settings: Settings) -> None:
    server.reply = "slow " * 400
    server.chunk_delay = 0.02
    env = {k: v for k, v in os.environ.items() if not k.startswith("PARLEY_")}
    env["PARLEY_HOME"] = str(home)
    proc = subprocess.Popen([sys.executable, "-m", "tui.cli", "--db", database_url, "ask",
                             "--no-rag", "Go slowly"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None
    first = proc.stdout.read(20)  # the answer is streaming
    time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert b"interrupted" in err
    printed = (first + out).decode().strip()
    role, status, content = (await stored(settings))[-1]
    assert (role, status) == ("assistant", "interrupted")
    assert content.strip().startswith(printed[:20]) and len(content) < len(server.reply)


def test_usage_reports_what_the_server_reported(ask: Any, home: Path,
                                                database_url: str) -> None:
    assert ask("--new", "flux capacitor power?").returncode == 0
    result = steps("--db", database_url, "usage", "--by", "model", "--json", home=home)
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    rows = {row["key"]: row for row in data["rows"]}
    chat = rows["test/fake-chat"]
    assert (chat["calls"], chat["prompt_tokens"], chat["completion_tokens"]) == (1, 250, 9)
    assert data["total"]["calls"] == sum(row["calls"] for row in data["rows"])
    table = steps("--db", database_url, "usage", "--by", "session", home=home)
    assert table.returncode == 0 and "flux capacitor power?" in table.stdout
    assert table.stdout.splitlines()[-1].startswith("total")
    days = steps("--db", database_url, "usage", "--since", "7d", home=home)
    assert days.returncode == 0 and days.stdout.startswith("DAY")
    bad = parley("--db", database_url, "usage", "--since", "last tuesday", home=home)
    assert bad.returncode == 2 and "YYYY-MM-DD" in bad.stderr
