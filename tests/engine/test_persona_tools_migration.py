"""Migration ``0012_persona_tools`` on both backends, over a database with personas and
sessions in it: down removes the columns and keeps every row (the persona's encrypted
prompt still reads), up again gives existing personas no tools of their own (the
configured ones, as before) and leaves the sessions' own tools as they were."""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from engine import Engine, Settings
from engine.db import schema
from tests.conftest import migrate

PREVIOUS = "0011_copy_state_owner"


def _columns(conn: Connection) -> dict[str, set[str]]:
    found = inspect(conn)
    return {t: {c["name"] for c in found.get_columns(t)} for t in ("personas", "sessions")}


async def test_persona_tools_down_and_up_keep_existing_rows(settings: Settings,
                                                             backend: str) -> None:
    await migrate(settings, from_scratch=True)
    async with Engine(settings) as engine:
        assert schema.head_revision() == "0012_persona_tools"
        session = await engine.sessions.create("set up")
        await engine.chat.configure(session.id, system_prompt="Be brief.",
                                    tools=["parley.search"])
        await engine.personas.save_from_session("brief", session.id)
        await engine.chat.configure(session.id, tools=[])
        await engine.personas.save_from_session("quiet", session.id)
        started = await engine.chat.start(persona="brief")
        assert (await engine.personas.get("brief")).tools == ("parley.search",)
        assert (started.tools, started.tools_persona) == (("parley.search",), "brief")

        state = await engine.downgrade(PREVIOUS)
        assert state.current == PREVIOUS
        assert engine.db is not None
        async with engine.db.engine.connect() as conn:
            columns = await conn.run_sync(_columns)
            names = (await conn.execute(text("SELECT name FROM personas ORDER BY name"))).all()
            sessions = (await conn.execute(text("SELECT count(*) FROM sessions"))).scalar()
        assert "tools" not in columns["personas"] and "tools" in columns["sessions"]
        assert "tools_persona" not in columns["sessions"]
        assert [n for (n,) in names] == ["brief", "quiet"] and sessions == 2

    async with Engine(settings, migrate=False) as admin:
        assert (await admin.upgrade()).up_to_date
    async with Engine(settings) as engine:
        for name in ("brief", "quiet"):
            persona = await engine.personas.get(name)
            assert persona.tools is None and persona.system_prompt == "Be brief."
        summary = (await engine.sessions.get(started.id)).session
        assert (summary.tools, summary.tools_persona) == (("parley.search",), None)
        # the new columns work on the upgraded database
        await engine.personas.save_from_session("brief", started.id, replace=True)
        assert (await engine.personas.get("brief")).tools == ("parley.search",)
