"""Tool calls on the OpenAI chat-completions wire: the request shapes and the streamed
``delta.tool_calls`` assembled into whole calls.

Servers differ in how they stream calls, and the accumulator tolerates all of them:

* OpenAI and llama.cpp: ``id``, ``type`` and ``name`` once, on a call's first fragment;
  ``arguments`` in JSON fragments to concatenate; several calls interleaved by ``index``.
* Ollama: each call whole in one delta, and ``index`` may be 0 for every call of a batch,
  so a *different* id arriving at an index that already has one opens a new call.
* Some servers re-send the full name on every fragment: a name that equals or extends the
  one stored replaces it instead of being appended.
* Ids may be missing, empty or integers: they become strings, and a call without one gets
  a synthesized ``call_<random>`` that the ``tool`` message then answers.
* ``finish_reason`` may be ``stop`` although calls were streamed: calls with a name count
  whatever the reason says.

Arguments stay the text the model wrote; they are parsed by the tool loop, which answers
invalid JSON with an error result rather than failing the turn.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from engine.providers.base import ChatMessage, ToolCall, ToolSpec


def new_call_id() -> str:
    """An id for a call the server sent without one."""
    return f"call_{secrets.token_hex(8)}"


def wire_message(message: ChatMessage) -> dict[str, Any]:
    """A prompt message as the request carries it.

    An assistant message with calls sends ``content: ""``, never null: llama.cpp's server
    answers HTTP 500 to a null content.
    """
    if message.role == "tool":
        return {"role": "tool", "tool_call_id": message.tool_call_id or "",
                "content": message.content}
    out: dict[str, Any] = {"role": message.role, "content": message.content or ""}
    if message.tool_calls:
        out["tool_calls"] = [{"id": call.id, "type": "function",
                              "function": {"name": call.name, "arguments": call.arguments}}
                             for call in message.tool_calls]
    return out


def wire_tools(tools: Sequence[ToolSpec]) -> list[dict[str, Any]]:
    """The ``tools`` array of a request."""
    return [{"type": "function", "function": {"name": t.name, "description": t.description,
                                               "parameters": t.parameters}} for t in tools]


@dataclass
class _Slot:
    id: str = ""
    name: str = ""
    arguments: list[str] = field(default_factory=list)


class ToolCallAccumulator:
    """Collects ``delta.tool_calls`` fragments of one streamed response (module docstring)."""

    def __init__(self) -> None:
        self._slots: list[_Slot] = []
        self._by_index: dict[int, _Slot] = {}

    def add(self, fragments: Any) -> None:
        """Take the ``tool_calls`` list of one delta (malformed entries are ignored)."""
        if not isinstance(fragments, list):
            return
        for position, fragment in enumerate(fragments):
            if not isinstance(fragment, dict):
                continue
            index = fragment.get("index")
            if not isinstance(index, int):
                index = position
            raw_id = fragment.get("id")
            call_id = str(raw_id) if raw_id not in (None, "") else ""
            slot = self._by_index.get(index)
            if slot is None or (call_id and slot.id and call_id != slot.id):
                slot = _Slot()
                self._slots.append(slot)
                self._by_index[index] = slot
            if call_id and not slot.id:
                slot.id = call_id
            function = fragment.get("function") or {}
            if not isinstance(function, dict):
                continue
            name = function.get("name")
            if isinstance(name, str) and name:
                # A re-sent full name replaces; a true fragment extends.
                slot.name = name if name.startswith(slot.name) else slot.name + name
            arguments = function.get("arguments")
            if isinstance(arguments, str):
                slot.arguments.append(arguments)
            elif isinstance(arguments, dict | list):  # a server that sends parsed JSON
                slot.arguments.append(json.dumps(arguments, ensure_ascii=False))

    def calls(self) -> tuple[ToolCall, ...]:
        """The calls with a name, in the order they began; empty arguments mean ``{}``."""
        out: list[ToolCall] = []
        for slot in self._slots:
            if not slot.name:
                continue
            arguments = "".join(slot.arguments).strip() or "{}"
            out.append(ToolCall(slot.id or new_call_id(), slot.name, arguments))
        return tuple(out)
