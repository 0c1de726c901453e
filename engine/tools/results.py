"""Tool results as the model gets them: size limits, argument parsing, naming.

A result longer than ``max_result_chars`` keeps its head (40 %) and tail (60 %, where logs
and summaries end) with a marker between them saying how much was cut; the full result is
stored with the answer.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

_WIRE_OK = re.compile(r"[^A-Za-z0-9_-]")
WIRE_MAX = 64
HEAD_SHARE = 0.4


def wire_name(server: str, tool: str) -> str:
    """The name the model sees: ``server__tool`` in ``[A-Za-z0-9_-]``, at most 64
    characters (a hash keeps shortened names distinct)."""
    name = _WIRE_OK.sub("_", f"{server}__{tool}")
    if len(name) <= WIRE_MAX:
        return name
    digest = hashlib.sha1(name.encode()).hexdigest()[:8]
    return f"{name[:WIRE_MAX - 9]}_{digest}"


def clip(text: str, limit: int) -> tuple[str, bool]:
    """(text for the model, truncated?): head and tail kept around a marker."""
    if len(text) <= limit:
        return text, False
    marker_room = 120
    keep = max(limit - marker_room, 0)
    head = int(keep * HEAD_SHARE)
    tail = keep - head
    cut = len(text) - head - tail
    marker = (f"\n[… {cut} of {len(text)} characters cut here; the full result is stored "
              "with the answer …]\n")
    return text[:head] + marker + (text[-tail:] if tail else ""), True


def parse_arguments(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """(arguments, error): the model's JSON text as an object, or why it is not one."""
    try:
        value = json.loads(text or "{}")
    except ValueError as exc:
        return None, f"the arguments were not valid JSON ({exc}): {text[:200]}"
    if not isinstance(value, dict):
        return None, f"the arguments must be a JSON object, not {type(value).__name__}"
    return value, None


def pretty(arguments: str) -> str:
    """Arguments as indented JSON when they parse, else as written."""
    try:
        return json.dumps(json.loads(arguments), indent=2, ensure_ascii=False)
    except ValueError:
        return arguments


def canonical_arguments(arguments: str) -> str:
    """The arguments in one normal form (for the loop guard): sorted keys, no spaces."""
    try:
        return json.dumps(json.loads(arguments), sort_keys=True, separators=(",", ":"))
    except ValueError:
        return arguments.strip()
