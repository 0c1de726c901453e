"""Parley's engine: storage, encryption, ingestion, retrieval, chat and usage.

Front ends import from here only. ``Engine``, ``Settings`` and ``load_settings`` are
imported on first use: a UI can paint before pydantic, SQLAlchemy, Alembic and numpy are
imported (importing ``engine.errors`` runs this module too).
"""

from typing import TYPE_CHECKING, Any

from engine.errors import ParleyError

if TYPE_CHECKING:
    from engine.config import Settings, load_settings
    from engine.facade import Engine

__version__ = "0.1.0"

__all__ = ["Engine", "ParleyError", "Settings", "__version__", "load_settings"]


def __getattr__(name: str) -> Any:
    if name == "Engine":
        from engine.facade import Engine

        return Engine
    if name in ("Settings", "load_settings"):
        import engine.config

        return getattr(engine.config, name)
    raise AttributeError(f"module 'engine' has no attribute {name!r}")
