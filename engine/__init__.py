"""Parley's engine: storage, encryption, ingestion, retrieval, chat and usage.

Front ends import from here only. Nothing is opened or imported eagerly beyond what the
names below need.
"""

from engine.config import Settings, load_settings
from engine.errors import ParleyError
from engine.facade import Engine

__version__ = "0.1.0"

__all__ = ["Engine", "ParleyError", "Settings", "__version__", "load_settings"]
