"""What the app remembers between runs that is not configuration: the theme picked in the
app. Kept in ``ui-state.json`` beside the default database (``PARLEY_HOME`` when set).

A value set in the config file, the environment or a flag wins over a remembered one, so a
config is never overridden behind the user's back. The file is small and rewritten whole
(atomically); a missing or damaged file means nothing is remembered, never an error.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

from engine.config import data_dir

FILE_NAME = "ui-state.json"


def state_path() -> Path:
    return data_dir() / FILE_NAME


def load_state() -> dict[str, Any]:
    """The remembered values ({} when there are none or the file cannot be read)."""
    try:
        data = json.loads(state_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def remember(key: str, value: Any) -> None:
    """Store ``key`` (raises ``OSError`` when the file cannot be written)."""
    path = state_path()
    data = load_state()
    data[key] = value
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ui-state-", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            json.dump(data, out, indent=2)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
