"""Which tools a session may use.

A session stores a list of canonical ``server.tool`` globs (``files.*``, ``parley.search``)
or nothing. Nothing follows the configuration: tools are on when ``tools.enabled`` is, with
every tool that is offered. An empty list turns tools off for the session; a list with
names turns them on for it, whatever ``tools.enabled`` says, with only those tools. The
question's own switch (``parley ask --tools/--no-tools``) beats the session's choice; with
``--tools`` a session that chose no tools gets every offered tool for that question.
``tools.deny`` still wins over any choice: a denied tool is never offered.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import TypeVar

from engine.errors import UsageError
from engine.tools.policy import matches

T = TypeVar("T")


def tools_on(enabled: bool, selection: Sequence[str] | None, asked: bool | None) -> bool:
    """Whether a turn offers tools: the question's switch, else the session's choice, else
    ``tools.enabled``."""
    if asked is not None:
        return asked
    if selection is not None:
        return bool(selection)
    return enabled


def chosen(tools: Mapping[str, T], selection: Sequence[str] | None,
           canonical: Mapping[str, str]) -> dict[str, T]:
    """The tools of ``tools`` (by wire name) the selection keeps; ``canonical`` maps each
    wire name to its ``server.tool``. No selection, or an empty one, keeps them all."""
    if not selection:
        return dict(tools)
    return {wire: tool for wire, tool in tools.items() if matches(canonical[wire], selection)}


def parse_selection(names: Iterable[str], servers: Iterable[str]) -> list[str]:
    """Check a list of ``server.tool`` globs against the configured servers (``UsageError``
    naming the first bad one); duplicates and blanks are dropped, the order kept."""
    known = sorted(set(servers))
    out: list[str] = []
    for raw in names:
        for name in (part.strip() for part in raw.split(",")):
            if not name or name in out:
                continue
            server, dot, tool = name.partition(".")
            if name != "*" and (not dot or not tool):
                raise UsageError(f"'{name}' is not a tool name: write SERVER.TOOL or "
                                 "SERVER.* (e.g. parley.search)",
                                 "list the tools: parley tools list")
            if name != "*" and not any(matches(s, [server]) for s in known):
                raise UsageError(f"no tool server matches '{server}' (in '{name}')",
                                 f"servers: {', '.join(known) or 'none configured'}")
            out.append(name)
    return out


def describe(selection: Sequence[str] | None, enabled: bool) -> str:
    """One line for people: ``all offered (config)``, ``none``, ``parley.search, files.*``."""
    if selection is None:
        return "every offered tool (tools.enabled)" if enabled else "off (tools.enabled: false)"
    if not selection:
        return "none"
    return ", ".join(selection)
