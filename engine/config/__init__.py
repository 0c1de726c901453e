"""Parley's settings: one typed model, four sources, and where each value came from.

Sources, highest first: command-line flags (passed in as ``overrides``), the environment
(``PARLEY_`` prefix, ``__`` between nested keys), the YAML config file, the defaults.
``PARLEY_HOME`` moves the config file, the key file and the default database under one
directory; without it they live in the per-user directories from platformdirs.

One module per group of sections (``storage``, ``chat``, ``ui``, ``tools``), the root model
(``settings``), the loading and its errors (``loading``), and the pydantic-free part
(``files``: directories, the YAML file, merging; ``early``: the few keys the terminal UI's
first frame needs). Names are imported from here (``from engine.config import Settings``)
and each is loaded on first use, so importing this package costs nothing until then: the
first frame of the terminal UI never waits for pydantic.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from engine.config.chat import (
        BudgetSettings,
        ChatParams,
        ChatSettings,
        ModelSettings,
        PersonaSettings,
        ProviderSettings,
    )
    from engine.config.files import (
        ENV_PREFIX,
        RESERVED_ENV,
        config_dir,
        data_dir,
        default_config_path,
    )
    from engine.config.files import deep_merge as _deep_merge
    from engine.config.loading import effective_items, load_settings
    from engine.config.settings import Settings
    from engine.config.storage import (
        CryptoSettings,
        DatabaseSettings,
        EmbeddingSettings,
        RetrievalSettings,
        WatchSettings,
    )
    from engine.config.tools import MCPServerSettings, ToolsSettings
    from engine.config.ui import UISettings

# name -> (module, its name there)
_WHERE: dict[str, tuple[str, str]] = {
    **{name: ("engine.config.chat", name) for name in (
        "BudgetSettings", "ChatParams", "ChatSettings", "ModelSettings", "PersonaSettings",
        "ProviderSettings")},
    **{name: ("engine.config.storage", name) for name in (
        "CryptoSettings", "DatabaseSettings", "EmbeddingSettings", "RetrievalSettings",
        "WatchSettings")},
    **{name: ("engine.config.files", name) for name in (
        "ENV_PREFIX", "RESERVED_ENV", "config_dir", "data_dir", "default_config_path")},
    "_deep_merge": ("engine.config.files", "deep_merge"),
    "MCPServerSettings": ("engine.config.tools", "MCPServerSettings"),
    "ToolsSettings": ("engine.config.tools", "ToolsSettings"),
    "UISettings": ("engine.config.ui", "UISettings"),
    "Settings": ("engine.config.settings", "Settings"),
    "load_settings": ("engine.config.loading", "load_settings"),
    "effective_items": ("engine.config.loading", "effective_items"),
}

__all__ = sorted(name for name in _WHERE if not name.startswith("_"))


def __getattr__(name: str) -> Any:
    try:
        module, attribute = _WHERE[name]
    except KeyError:
        raise AttributeError(f"module 'engine.config' has no attribute {name!r}") from None
    value = getattr(importlib.import_module(module), attribute)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_WHERE))
