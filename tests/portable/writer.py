"""A second OS process that keeps writing to a Parley database until told to stop: each
transaction adds a message and the usage row that refers to it (so a consistent snapshot
holds exactly as many of one as of the other). Run: python -m tests.portable.writer URL STOP"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from engine import Engine
from engine.db import models as m
from tests.portable.support import settings_for


async def main(url: str, stop: Path) -> None:
    async with Engine(settings_for(url)) as me:
        session = await me.sessions.create("written during the backup")
        assert me.db is not None
        i = 0
        while not stop.exists():
            async with me.db.write() as s:
                msg = m.Message(user_id=me.user_id, session_id=session.id, role="user",
                                content=f"live {i}")
                s.add(msg)
                await s.flush()
                s.add(m.TokenUsage(user_id=me.user_id, session_id=session.id,
                                   message_id=msg.id, kind="chat", model="live"))
            i += 1


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], Path(sys.argv[2])))
