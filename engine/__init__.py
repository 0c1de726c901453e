"""Parley's engine: storage, encryption, ingestion, retrieval, chat and usage.

Front ends import from here only. ``Engine`` is imported on first use: settings can be
loaded (and a UI painted) before SQLAlchemy, Alembic and numpy are imported.
"""

from typing import TYPE_CHECKING, Any

from engine.config import Settings, load_settings
from engine.errors import ParleyError

if TYPE_CHECKING:
    from engine.facade import Engine

__version__ = "0.1.0"

__all__ = ["Engine", "ParleyError", "Settings", "__version__", "load_settings"]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from engine.facade import Engine

        return Engine
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
