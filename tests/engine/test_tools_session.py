"""Tools chosen per session, and trust on first use of local MCP server commands.

Trust is checked without starting anything where that is enough (``Trust.check``), on
every backend and as a PostgreSQL team member; one test starts the real stdio server to
show a refused command never runs and a confirmed one does."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from engine import Engine, Settings, load_settings
from engine.config import MCPServerSettings
from engine.db import models as m
from engine.errors import UsageError
from engine.tools.trust import ServerNotTrusted, digest
from engine.types import TrustRequest
from tests.engine.tool_support import call, collect, configure, finished, open_engine
from tests.support.mcp_launch import stdio_config
from tests.support.openai_server import OpenAITestServer, calls_script


@pytest.fixture
def server() -> Iterator[OpenAITestServer]:
    with OpenAITestServer(reply="Done.") as srv:
        yield srv


def _offered(server: OpenAITestServer) -> list[list[str]]:
    return [[t["function"]["name"] for t in r.json.get("tools", [])]
            for r in server.chat_requests]


class Asker:
    """Answers trust questions with ``answer`` and keeps them."""

    def __init__(self, answer: bool) -> None:
        self.answer = answer
        self.asked: list[TrustRequest] = []

    async def __call__(self, request: TrustRequest) -> bool:
        self.asked.append(request)
        return self.answer


FILES = MCPServerSettings(command="python", args=["-m", "notes_server", "~/notes"],
                          env={"TOKEN": "${NOTES_TOKEN}"})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_a_session_offers_only_its_tools_and_its_choice_can_be_overridden(
        settings: Settings, server: OpenAITestServer) -> None:
    configure(settings, server)
    settings.tools.enabled = False  # a session's choice turns tools on for it alone
    settings.mcp_servers = {"files": MCPServerSettings(**stdio_config(enabled=False))}
    engine = await open_engine(settings)
    try:
        session = await engine.chat.start()
        with pytest.raises(UsageError, match="no tool server matches 'nosuch'"):
            await engine.chat.configure(session.id, tools=["nosuch.tool"])
        with pytest.raises(UsageError, match="not a tool name"):
            await engine.chat.configure(session.id, tools=["search"])
        chosen, _ = await engine.chat.configure(session.id, tools=["parley.search, files.*"])
        assert chosen.tools == ("parley.search", "files.*")
        server.tool_calls = calls_script([[call("parley__search", "c1", query="x")]])
        events = await collect(engine.chat.ask("Look it up", session_id=session.id))
        assert [r.status for r in finished(events)] == ["ok"]
        assert _offered(server)[0] == ["parley__search"]
        # the question's own switch beats the session's choice
        await collect(engine.chat.ask("No tools now", session_id=session.id, tools=False))
        assert "tools" not in server.chat_requests[-1].json
        off, _ = await engine.chat.configure(session.id, tools=[])
        assert off.tools == ()
        settings.tools.enabled = True
        await collect(engine.chat.ask("Still none", session_id=session.id))
        assert "tools" not in server.chat_requests[-1].json
        back, _ = await engine.chat.configure(session.id, tools=None)
        assert back.tools is None
        await collect(engine.chat.ask("Configured again", session_id=session.id))
        assert _offered(server)[-1] == ["parley__search"]
        # the choice travels with an exported session
        await engine.chat.configure(session.id, tools=["parley.*"])
        exported = await engine.sessions.export(session.id)
        imported = await engine.sessions.import_(exported)
        assert imported.session.tools == ("parley.*",)
    finally:
        await engine.close()


async def test_trust_is_asked_once_per_command_line_and_stored_per_user(
        engine: Engine) -> None:
    trust = engine.tools.trust
    with pytest.raises(ServerNotTrusted, match="--trust-servers"):
        await trust.check("files", FILES)  # nobody to ask: refused, nothing stored
    no = Asker(False)
    trust.asker = no
    for _ in range(2):  # a "no" is not asked again in this process
        with pytest.raises(ServerNotTrusted, match="you did not trust"):
            await trust.check("files", FILES)
    assert len(no.asked) == 1
    (request,) = no.asked
    assert (request.command_line, request.env_names, request.changed) == (
        "python -m notes_server '~/notes'", ("TOKEN",), False)
    trust.reconsider("files")
    yes = Asker(True)
    trust.asker = yes
    await trust.check("files", FILES)
    await trust.check("files", FILES)
    assert len(yes.asked) == 1
    async with engine._require_db().read() as s:
        rows = (await s.scalars(select(m.ToolServerTrust))).all()
        audit = (await s.scalars(select(m.AuditLog).where(
            m.AuditLog.action == "mcp.trust"))).all()
    assert [(r.server, r.digest) for r in rows] == [("files", digest(FILES))]
    assert [a.target for a in audit] == ["files: python"]
    # an env value is not part of the command line; a changed argument or env name is
    assert digest(FILES.model_copy(update={"env": {"TOKEN": "other"}})) == digest(FILES)
    changed = FILES.model_copy(update={"args": ["-m", "notes_server", "/"]})
    assert digest(changed) != digest(FILES)
    await trust.check("files", changed)
    assert len(yes.asked) == 2 and yes.asked[-1].changed
    # config trust and --trust-servers never ask
    await trust.check("other", FILES.model_copy(update={"trusted": True}))
    trust.trust_all = True
    await trust.check("third", FILES)
    assert len(yes.asked) == 2
    assert await trust.forget("files") == 1


async def test_a_new_engine_remembers_the_trust(settings: Settings, engine: Engine) -> None:
    engine.tools.trust.asker = Asker(True)
    await engine.tools.trust.check("files", FILES)
    async with Engine(settings) as again:
        again.tools.trust.asker = asker = Asker(False)
        await again.tools.trust.check("files", FILES)
        assert asker.asked == []


async def test_a_team_member_can_trust_a_server(postgres_server, parley_home: Path,
                                                tmp_path: Path) -> None:
    from tests.teams.support import member_database

    async with member_database(postgres_server.admin_url, tmp_path) as url:
        async with Engine(load_settings(overrides={"database": {"url": url}})) as member:
            member.tools.trust.asker = Asker(True)
            await member.tools.trust.check("files", FILES)
            async with member._require_db().read() as s:
                assert (await s.scalars(select(m.ToolServerTrust.server))).all() == ["files"]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
async def test_an_untrusted_stdio_server_never_starts(settings: Settings,
                                                      server: OpenAITestServer) -> None:
    configure(settings, server, allow=["files.*"])
    marker = "trust-marker-9137"  # in the command line, to look for the process
    settings.mcp_servers = {"files": MCPServerSettings(**stdio_config(
        trusted=False, args=["-m", "tests.support.mcp_server", "stdio", marker]))}
    engine = await open_engine(settings)
    try:
        engine.tools.trust.asker = no = Asker(False)
        (files,) = [s for s in await engine.tools.catalog() if s.name == "files"]
        assert files.state == "untrusted" and "you did not trust" in (files.error or "")
        assert len(no.asked) == 1 and marker in no.asked[0].command_line
        assert not _running(marker)
        # a turn goes on without the server's tools, and says why
        server.tool_calls = calls_script([[call("parley__search", "c1", query="x")]])
        events = await collect(engine.chat.ask("Hello"))
        assert any("you did not trust" in getattr(e, "message", "") for e in events)
        assert _offered(server)[0] == ["parley__search"]
        engine.tools.trust.reconsider("files")
        engine.tools.trust.asker = Asker(True)
        added = await engine.tools.call("files.add", '{"a": 2, "b": 3}')
        assert (added.status, added.result) == ("ok", "5")
    finally:
        await engine.close()


def _running(marker: str) -> bool:
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            except OSError:
                continue
            if marker in cmdline and sys.executable.split("/")[-1] in cmdline:
                return True
    return False
