"""``Settings``: every setting of Parley in one typed model, and its resolved paths."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from engine.config.chat import ChatSettings, PersonaSettings, ProviderSettings
from engine.config.files import config_dir, data_dir, default_user
from engine.config.storage import (
    CryptoSettings,
    DatabaseSettings,
    EmbeddingSettings,
    RetrievalSettings,
    WatchSettings,
)
from engine.config.tools import MCPServerSettings, ToolsSettings
from engine.config.ui import UISettings


class Settings(BaseModel):
    """Every setting of Parley. See ``config.example.yaml`` for a commented copy.

    A plain model, not pydantic-settings' ``BaseSettings``: ``load_settings`` merges the
    sources itself (to know each value's origin), and importing pydantic-settings (dotenv,
    cloud secret sources) costs start-up time every launch; it is imported only when the
    environment holds settings (``engine.config.loading``).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)

    user: str = Field(default_factory=default_user)
    """The user whose sessions and documents Parley shows on SQLite. On PostgreSQL the user
    is the connecting role; a value naming another role is refused (``engine.teams``)."""
    database: DatabaseSettings = DatabaseSettings()
    crypto: CryptoSettings = CryptoSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    chat: ChatSettings = ChatSettings()
    providers: dict[str, ProviderSettings] = {}
    ui: UISettings = UISettings()
    personas: dict[str, PersonaSettings] = {}
    tools: ToolsSettings = ToolsSettings()
    mcp_servers: dict[str, MCPServerSettings] = {}
    watch: WatchSettings = WatchSettings()

    # Not settings: where this configuration was read from, filled by load_settings.
    _sources: dict[str, str] = {}
    _config_path: Path | None = None

    # -- resolved paths --------------------------------------------------------------------
    def home_dirs(self) -> tuple[Path, Path]:
        """(config dir, data dir)."""
        return config_dir(), data_dir()

    def database_url(self) -> str:
        """The effective database URL (the SQLite default when none is set)."""
        if self.database.url:
            url = self.database.url
            if url.startswith("sqlite:///") or url.startswith("sqlite+aiosqlite:///"):
                url = "sqlite+aiosqlean:///" + url.split(":///", 1)[1]
            return url
        return f"sqlite+aiosqlean:///{data_dir() / 'parley.db'}"

    def key_file_path(self) -> Path:
        """The effective key file path."""
        if self.crypto.key_file:
            return Path(self.crypto.key_file).expanduser()
        return config_dir() / "key"

    @property
    def sources(self) -> dict[str, str]:
        """Where each value came from: dotted key -> "flag" | "env" | "file" | "default"."""
        return dict(self._sources)

    @property
    def config_path(self) -> Path | None:
        """The config file that was read, if any."""
        return self._config_path
