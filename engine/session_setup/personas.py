"""Personas: named chat presets (provider, model, system prompt, collections, RAG switch,
parameters, tools, a first question).

They come from the config file (``personas:``) or are saved from a session into the
database (``save_from_session``), per user. A name in the config file wins over a saved one
and cannot be deleted here. Starting a chat from a persona copies its settings into the new
session, so editing the persona later does not change chats already started.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from engine.db import models as m
from engine.errors import NotFound, UsageError
from engine.types import PersonaInfo

if TYPE_CHECKING:
    from engine.facade import Engine

_NAME = re.compile(r"^[\w][\w.-]{0,99}$")


def _from_row(row: m.Persona) -> PersonaInfo:
    return PersonaInfo(name=row.name, origin="saved", provider=row.provider, model=row.model,
                       system_prompt=row.system_prompt, collections=tuple(row.collections or ()),
                       rag=row.rag, params=dict(row.params or {}),
                       first_message=row.first_message,
                       tools=None if row.tools is None else tuple(row.tools))


class Personas:
    """The personas of one user (``engine.personas``)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _configured(self) -> list[PersonaInfo]:
        out = []
        for name, p in self.engine.settings.personas.items():
            params = {k: v for k, v in p.params.model_dump().items() if v is not None}
            out.append(PersonaInfo(name=name, origin="config", provider=p.provider,
                                   model=p.model, system_prompt=p.system_prompt,
                                   collections=tuple(p.collections), rag=p.rag, params=params,
                                   first_message=p.first_message, description=p.description,
                                   tools=None if p.tools is None else tuple(p.tools)))
        return out

    async def list(self) -> list[PersonaInfo]:
        """Every persona, by name (a config one hides a saved one of the same name)."""
        found = {p.name: p for p in self._configured()}
        async with self.engine._require_db().read() as s:
            for row in await s.scalars(select(m.Persona).where(
                    m.Persona.user_id == self.engine.user_id)):
                found.setdefault(row.name, _from_row(row))
        return sorted(found.values(), key=lambda p: p.name.lower())

    async def get(self, name: str) -> PersonaInfo:
        """One persona. Raises ``NotFound`` listing the known names."""
        personas = await self.list()
        for persona in personas:
            if persona.name == name:
                return persona
        known = ", ".join(p.name for p in personas) or "none yet"
        raise NotFound(f"no persona named '{name}'",
                       f"known: {known}; save one: parley personas save NAME --from-session ID")

    async def check(self, persona: PersonaInfo) -> None:
        """A persona's collections must exist: ``NotFound`` naming the persona otherwise;
        a saved persona's tools must name configured servers (``UsageError``)."""
        if persona.tools and persona.origin != "config":  # config ones: checked at load
            from engine.tools.selection import parse_selection

            try:
                parse_selection(persona.tools, ["parley", *self.engine.settings.mcp_servers])
            except UsageError as exc:
                raise UsageError(f"persona '{persona.name}': {exc.message}",
                                 f"{exc.hint}; save it again from a session with "
                                 "the tools you want (--replace)") from None
        if not persona.collections:
            return
        have = {c.name for c in await self.engine.library.collections()}
        missing = [c for c in persona.collections if c not in have]
        if missing:
            where = (f"personas.{persona.name}.collections in the config file"
                     if persona.origin == "config" else "the saved persona")
            raise NotFound(f"persona '{persona.name}' names collection "
                           f"{', '.join(repr(c) for c in missing)}, which does not exist",
                           f"ingest into it (parley ingest PATH --collection {missing[0]}) "
                           f"or fix {where}")

    async def save_from_session(self, name: str, session_id: int, *,
                                replace: bool = False) -> PersonaInfo:
        """Save a session's settings as persona ``name``."""
        if not _NAME.match(name):
            raise UsageError(f"'{name}' is not a usable persona name",
                             "use letters, digits, '.', '-' or '_' (up to 100)")
        if name in self.engine.settings.personas:
            raise UsageError(f"persona '{name}' is defined in the config file",
                             "pick another name, or edit it in the config file")
        summary = (await self.engine.sessions.get(session_id)).session
        async with self.engine._require_db().write() as s:
            row = await s.scalar(select(m.Persona).where(
                m.Persona.user_id == self.engine.user_id, m.Persona.name == name))
            if row is not None and not replace:
                raise UsageError(f"a persona named '{name}' already exists",
                                 "pass --replace to overwrite it, or pick another name")
            if row is None:
                row = m.Persona(user_id=self.engine.user_id, name=name)
                s.add(row)
            row.provider, row.model = summary.provider, summary.model
            row.system_prompt = summary.system_prompt
            row.collections = list(summary.collections)
            row.rag, row.params = summary.rag, dict(summary.params or {})
            row.tools = None if summary.tools is None else list(summary.tools)
            try:
                await s.flush()
            except IntegrityError:
                raise UsageError(f"a persona named '{name}' was just saved by another process",
                                 "try again with --replace") from None
        return await self.get(name)

    async def delete(self, name: str) -> PersonaInfo:
        """Delete a saved persona (config ones are edited in the file)."""
        persona = await self.get(name)
        if persona.origin == "config":
            raise UsageError(f"persona '{name}' is defined in the config file",
                             "remove it from the personas: section of the config file")
        async with self.engine._require_db().write() as s:
            row = await s.scalar(select(m.Persona).where(
                m.Persona.user_id == self.engine.user_id, m.Persona.name == name))
            if row is not None:
                await s.delete(row)
        return persona
