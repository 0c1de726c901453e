"""``Engine``: the one object front ends talk to.

Opened as an async context manager from settings. Opening connects, checks the schema
(upgrading the embedded SQLite file, refusing an old PostgreSQL schema), checks the
encryption key against the database before anything is written, and finds the user.
Verbs live on small service objects (``engine.sessions``, ...) that return dataclasses
from ``engine.types``.
"""

from __future__ import annotations

from types import TracebackType
from typing import TYPE_CHECKING, Any, Self

from sqlalchemy import text
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import ProgrammingError as SAProgrammingError

from engine.keys import crypto
from engine.config import Settings
from engine.db import schema
from engine.db.connect import (Database, create_engine, is_driver_error, mask_url,
                               sqlite_path)
from engine.errors import DatabaseError, ParleyError
from engine.history.sessions import SessionStore
from engine.teams import identity
from engine.types import KeywordSearchInfo, SchemaStatus, SchemaUpgraded

if TYPE_CHECKING:
    from engine.chat.service import Chat
    from engine.keys.service import KeyManager
    from engine.library.service import Library
    from engine.portable.service import Backups
    from engine.providers.embedders import Embedder
    from engine.library.retrieval import Retriever
    from engine.types import CitationCheck
    from engine.session_setup.personas import Personas
    from engine.teams.admin import Team
    from engine.tools.toolbox import Toolbox
    from engine.usage import UsageLedger
    from engine.watch import FolderSync, WatchFolders


class Engine:
    """Parley's engine over one database, for one user.

    ``migrate=False`` opens without touching the schema (for ``parley db`` commands).
    """

    def __init__(self, settings: Settings, *, migrate: bool = True) -> None:
        self.settings = settings
        self._migrate = migrate
        self.db: Database | None = None
        self.user_id: int = 0
        self.cipher: crypto.FernetCipher | None = None
        self.key_source: str | None = None
        self.upgraded: SchemaUpgraded | None = None
        """Set when opening upgraded the embedded database (the UI tells the user)."""
        self._services: dict[str, Any] = {}
        self._embedder: Embedder | None = None

    # -- lifecycle ----------------------------------------------------------------------------
    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                        tb: TracebackType | None) -> None:
        await self.close()

    async def open(self) -> None:
        url = self.settings.database_url()
        self._prepare_sqlite_dir(url)
        database = self.settings.database
        self.db = Database(create_engine(url, busy_timeout_ms=database.busy_timeout_ms,
                                         pool_size=self.settings.database.pool_size,
                                         echo=self.settings.database.echo))
        try:
            state = await self._connect_and_check()
            self.settings = await identity.resolve(self.db, self.settings)
            if not self._migrate:
                return
            if state.current is not None:
                await self._load_key(create=False)
            self.upgraded = await schema.ensure_current(
                self.db, backup=self.settings.database.backup_before_upgrade)
            if self.cipher is None:
                await self._load_key(create=True)
            self.user_id = await self._ensure_user()
            if self.db.backend == "postgresql":
                await self.keyword_search()  # detect pg_textsearch once, at open
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        for service in self._services.values():
            closer = getattr(service, "aclose", None)
            if closer is not None:
                await closer()
        self._services.clear()
        if self._embedder is not None:
            await self._embedder.aclose()
            self._embedder = None
        if self.db is not None:
            await self.db.dispose()
            self.db = None

    def _prepare_sqlite_dir(self, url: str) -> None:
        path = sqlite_path(url)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    async def _connect_and_check(self) -> SchemaStatus:
        assert self.db is not None
        url = mask_url(self.settings.database_url())
        try:
            state = await schema.status(self.db)
        except Exception as exc:
            if not (isinstance(exc, OperationalError | DBAPIError | OSError)
                    or is_driver_error(exc)):
                raise
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
            raise (identity.no_access_error(url, detail) or _connection_error(url, exc)) from None
        schema.check_not_newer(state.current)
        return state

    # -- encryption key -----------------------------------------------------------------------
    async def _load_key(self, *, create: bool) -> None:
        """Resolve the key(s) and check them against the database before anything is written.

        During an unfinished key rotation this opens with both keys (see ``engine.keys``).
        """
        from engine.keys.service import open_cipher

        assert self.db is not None
        opened = await open_cipher(self.db, self.settings, create=create)
        if opened is None:
            return  # nothing encrypted yet; the key file is created after migrating
        self.cipher = opened.cipher
        self.key_source = opened.source
        self.db.engine.sync_engine.dialect.parley_cipher = opened.cipher  # type: ignore[attr-defined]

    async def _ensure_user(self) -> int:
        assert self.db is not None
        return await identity.ensure_user(self.db, self.settings.user)

    # -- verbs ----------------------------------------------------------------------------------
    def _require_db(self) -> Database:
        if self.db is None:
            raise ParleyError("the engine is not open", "use 'async with Engine(settings)'")
        return self.db

    def _service(self, name: str, factory: Any) -> Any:
        self._require_db()
        if name not in self._services:
            self._services[name] = factory(self)
        return self._services[name]

    @property
    def sessions(self) -> SessionStore:
        """Chat sessions and messages: list, show, rename, delete, export, import, search."""
        return self._service("sessions", lambda e: SessionStore(e._require_db(), e.user_id))

    @property
    def keys(self) -> KeyManager:
        """The encryption key: status and rotation."""
        from engine.keys.service import KeyManager

        return self._service("keys", KeyManager)

    @property
    def library(self) -> Library:
        """Collections and documents: ingest, list, remove, re-embed."""
        from engine.library.service import Library

        return self._service("library", Library)

    @property
    def retrieval(self) -> Retriever:
        """Hybrid (keyword + vector) search over collections."""
        from engine.library.retrieval import Retriever

        return self._service("retrieval", Retriever)

    @property
    def chat(self) -> Chat:
        """Asking questions: turns, regenerate, edit, providers."""
        from engine.chat.service import Chat

        return self._service("chat", Chat)

    @property
    def usage(self) -> UsageLedger:
        """Token usage and cost records, reports and budget checks."""
        from engine.usage import UsageLedger

        return self._service("usage", UsageLedger)

    @property
    def backups(self) -> Backups:
        """Backup archives of this database: back up now, the last backup."""
        from engine.portable.service import Backups

        return self._service("backups", Backups)

    @property
    def personas(self) -> Personas:
        """Named chat presets: from the config file, or saved from a session."""
        from engine.session_setup.personas import Personas

        return self._service("personas", Personas)

    @property
    def team(self) -> Team:
        """PostgreSQL teams: members (the owner's) and collection shares."""
        from engine.teams.admin import Team

        return self._service("team", Team)

    @property
    def tools(self) -> Toolbox:
        """Tool servers (MCP and built-in), approvals, calls by hand and stored tool runs."""
        from engine.tools.toolbox import Toolbox

        return self._service("tools", Toolbox)

    @property
    def watched(self) -> WatchFolders:
        """Watched folders: add, list, remove (``parley watch add|list|remove``)."""
        from engine.watch.folders import WatchFolders

        return self._service("watched", WatchFolders)

    def folder_sync(self, **options: Any) -> FolderSync:
        """What keeps the watched folders in sync (``parley watch``, the app's worker)."""
        from engine.watch.sync import FolderSync

        return FolderSync(self, **options)

    async def verify_citations(self, session_id: int | None = None) -> list[CitationCheck]:
        """Whether each stored citation (of a session, or all) still holds its source."""
        from engine.drift.verify import verify_citations

        return await verify_citations(self, session_id)

    def embedder(self) -> Embedder:
        """The configured embedder, created on first use and shared by every service."""
        if self._embedder is None:
            from engine.providers.embedders import make_embedder

            self._embedder = make_embedder(self.settings)
        return self._embedder

    async def schema_status(self) -> SchemaStatus:
        """Where the schema stands (applied and expected revision)."""
        return await schema.status(self._require_db())

    async def upgrade(self, revision: str = "head") -> SchemaStatus:
        """Apply migrations (backing up an SQLite file first)."""
        db = self._require_db()
        state = await schema.status(db)
        path = sqlite_path(self.settings.database_url())
        if (path is not None and path.exists() and state.current is not None
                and self.settings.database.backup_before_upgrade and not state.up_to_date):
            schema.backup_sqlite(path, state.current)
        await schema.upgrade(db, revision)
        return await schema.status(db)

    async def downgrade(self, revision: str) -> SchemaStatus:
        """Revert migrations down to ``revision`` (``base`` removes everything)."""
        db = self._require_db()
        await schema.downgrade(db, revision)
        return await schema.status(db)

    async def keyword_search(self) -> KeywordSearchInfo:
        """Which keyword ranking the database uses, and why (probes PostgreSQL again)."""
        from engine.db.pg_textsearch import keyword_search_info

        return await keyword_search_info(
            self._require_db(), enabled=self.settings.retrieval.bm25_index == "auto")

    async def database_role(self) -> str | None:
        """The role this connection logged in as (``session_user``) on PostgreSQL, who the
        user is there; None on SQLite (where the ``user`` setting says who)."""
        db = self._require_db()
        return await identity.session_role(db) if db.backend == "postgresql" else None

    async def ping(self) -> None:
        """Fail with DatabaseError if the database does not answer."""
        async with self._require_db().read() as s:
            await s.execute(text("SELECT 1"))


def _connection_error(url: str, exc: BaseException) -> DatabaseError:
    detail = str(getattr(exc, "orig", None) or exc).strip().splitlines()[0]
    if "file is not a database" in detail:
        return DatabaseError(f"{url} is not an SQLite database ({detail})",
                             "point database.url at a Parley database or another path")
    if "password" in detail:
        return DatabaseError(f"cannot open database {url}: {detail}",
                             "check the user and password in database.url (or in ~/.pgpass or "
                             "the file PGPASSFILE names)")
    if isinstance(exc, SAProgrammingError) or "does not exist" in detail:
        return DatabaseError(f"cannot open database {url}: {detail}",
                             "check the user, password and database name in database.url")
    return DatabaseError(f"cannot connect to database {url}: {detail}",
                         "check database.url and that the server is running")
