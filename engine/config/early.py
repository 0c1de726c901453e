"""The few keys the terminal UI's first frame needs, read without pydantic.

Validating the whole configuration imports pydantic and builds every section's validator:
about a third of the time to the first frame. The frame needs only ``ui`` (theme, keys,
Enter, sidebar, editor) and where each came from, so ``read_early`` reads them from the
file as written; the app validates everything right after that frame, before it handles a
key, and a broken configuration still ends ``parley`` with the one-line error and exit 2.

A plain read is used only where it cannot differ from the validated value: with settings
in the environment, flags for ``ui``, or a ``ui`` key pydantic would coerce or refuse (an
unknown key, ``show_sidebar: "yes"``), ``read_early`` returns None and the caller
validates everything before the first frame, as before.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.config.files import config_file, env_settings_names, flat_keys, origins

# The defaults of ``engine.config.ui.UISettings`` (a test keeps the two equal).
DEFAULTS: dict[str, Any] = {"theme": "textual-dark", "show_sidebar": True, "editor": None,
                            "keys": {}, "enter_sends": True}
# key -> the types its plain value may have (bool before int matters nowhere: no ints here)
_PLAIN: dict[str, tuple[type, ...]] = {"theme": (str,), "show_sidebar": (bool,),
                                       "editor": (str, type(None)), "keys": (dict,),
                                       "enter_sends": (bool,)}


@dataclass(frozen=True)
class EarlyUI:
    """``ui`` as the first frame uses it (the fields of ``UISettings``)."""

    theme: str = DEFAULTS["theme"]
    show_sidebar: bool = DEFAULTS["show_sidebar"]
    editor: str | None = DEFAULTS["editor"]
    keys: dict[str, str] = field(default_factory=dict)
    enter_sends: bool = DEFAULTS["enter_sends"]


@dataclass(frozen=True)
class EarlySettings:
    """What the first frame reads of the settings; the app replaces it with the validated
    ``Settings`` before anything else reads them."""

    ui: EarlyUI
    sources: dict[str, str]
    config_path: Path | None


def read_early(config_path: str | os.PathLike[str] | None = None,
               overrides: Mapping[str, Any] | None = None,
               environ: Mapping[str, str] | None = None) -> EarlySettings | None:
    """The first frame's settings from the config file as written, or None when only the
    full validation can tell them (see the module docstring). Raises ``ConfigError`` for a
    file that is missing (when named), unreadable or not YAML, as ``load_settings`` would.
    """
    environ = os.environ if environ is None else environ
    if env_settings_names(environ) or "ui" in (overrides or {}):
        return None
    path, values = config_file(config_path, environ)
    ui = values.get("ui", {})
    if not isinstance(ui, dict) or not set(ui) <= set(_PLAIN):
        return None
    plain: dict[str, Any] = {}
    for key, value in ui.items():
        if key == "keys":
            value = flat_keys(value)
            if isinstance(value, dict) and not all(
                    isinstance(k, str) and isinstance(v, str) for k, v in value.items()):
                return None
        if not isinstance(value, _PLAIN[key]):
            return None
        plain[key] = value
    return EarlySettings(ui=EarlyUI(**plain), sources=origins(("file", values)),
                         config_path=path)
