"""Plain frozen dataclasses: what the engine's verbs take and return.

Front ends see only these, never ORM rows, so a detached row can never trigger a lazy load
and the UI never depends on the storage layer.

One module per domain, named like the engine package that returns them (``chat``,
``history``, ``library``, ``tools``, ...). Every name is re-exported here, so
``from engine.types import X`` is how callers import them: a new dataclass goes in the
module of its domain (or a new one) and is added to the imports and ``__all__`` below.
"""

from engine.types.chat import Delta, Done, NothingFound, Searched, Sources
from engine.types.citations import Citation, CitationCheck, CitationDrift
from engine.types.db import KeywordSearchInfo, SchemaStatus, SchemaUpgraded
from engine.types.history import (
    HistoryHit,
    HistorySearchResult,
    Message,
    SessionDeleted,
    SessionDetail,
    SessionImported,
    SessionSummary,
)
from engine.types.ingest import IngestProgress, IngestResult, IngestRunInfo
from engine.types.keys import KeyStatus, RotationProgress, RotationResult, RotationState
from engine.types.library import (
    CollectionInfo,
    DocumentInfo,
    ReindexProgress,
    ReindexResult,
    SearchHit,
)
from engine.types.session_setup import AttachmentInfo, ChatScope, ContextWindow, PersonaInfo
from engine.types.teams import ShareInfo, TeamMember
from engine.types.tools import (
    ApprovalRequest,
    ToolCallFinished,
    ToolCallStarted,
    ToolInfo,
    ToolNotice,
    ToolRunInfo,
    ToolServerInfo,
    TrustRequest,
)
from engine.types.usage import BudgetWarning, Usage, UsageRow
from engine.types.watch import WatchedFolderInfo, WatchEvent

__all__ = [
    "ApprovalRequest",
    "AttachmentInfo",
    "BudgetWarning",
    "ChatScope",
    "Citation",
    "CitationCheck",
    "CitationDrift",
    "CollectionInfo",
    "ContextWindow",
    "Delta",
    "DocumentInfo",
    "Done",
    "HistoryHit",
    "HistorySearchResult",
    "IngestProgress",
    "IngestResult",
    "IngestRunInfo",
    "KeyStatus",
    "KeywordSearchInfo",
    "Message",
    "NothingFound",
    "PersonaInfo",
    "ReindexProgress",
    "ReindexResult",
    "RotationProgress",
    "RotationResult",
    "RotationState",
    "SchemaStatus",
    "SchemaUpgraded",
    "SearchHit",
    "Searched",
    "SessionDeleted",
    "SessionDetail",
    "SessionImported",
    "SessionSummary",
    "ShareInfo",
    "Sources",
    "TeamMember",
    "ToolCallFinished",
    "ToolCallStarted",
    "ToolInfo",
    "ToolNotice",
    "ToolRunInfo",
    "ToolServerInfo",
    "TrustRequest",
    "Usage",
    "UsageRow",
    "WatchEvent",
    "WatchedFolderInfo",
]
