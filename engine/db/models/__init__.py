"""The schema: SQLAlchemy 2.0 declarative models shared by SQLite and PostgreSQL.

Every row that belongs to a user carries ``user_id`` and every engine query filters on it.
What differs per backend is not here: SQLite's vec0 and FTS5 virtual tables and
PostgreSQL's ``tsv`` column and HNSW/GIN indexes are created by the migrations and used by
``engine/db/sqlite_search.py`` and ``engine/db/pg_search.py``. The models are grouped by
domain (``base``, ``history``, ``library``, ``tools``, ``portable``); every one is importable
from here, and importing this package registers them all on ``Base.metadata``.

Relationships load explicitly (``lazy="raise"``): nothing loads behind the caller's back.
"""

from engine.db.models.base import NAMING_CONVENTION, AuditLog, Base, Meta, User, UserKey
from engine.db.models.history import (
    Attachment,
    Citation,
    Message,
    ModelInfo,
    Persona,
    Session,
    SessionCollection,
    TokenUsage,
)
from engine.db.models.library import (
    Chunk,
    ChunkEmbedding,
    ChunkSet,
    Collection,
    CollectionShare,
    Document,
    DocumentTag,
    IngestionRun,
    WatchedFolder,
)
from engine.db.models.portable import CopyMap, CopyState
from engine.db.models.tools import ToolApproval, ToolRun, ToolServerTrust

__all__ = [
    "NAMING_CONVENTION", "AuditLog", "Base", "Meta", "User", "UserKey",
    "Attachment", "Citation", "Message", "ModelInfo", "Persona", "Session",
    "SessionCollection", "TokenUsage",
    "Chunk", "ChunkEmbedding", "ChunkSet", "Collection", "CollectionShare", "Document",
    "DocumentTag", "IngestionRun", "WatchedFolder",
    "CopyMap", "CopyState",
    "ToolApproval", "ToolRun", "ToolServerTrust",
]
