"""Loading the settings: the four sources merged, validated, checked for references.

Sources, highest first: command-line flags (passed in as ``overrides``), the environment
(``PARLEY_`` prefix, ``__`` between nested keys), the YAML config file, the defaults.
Unknown keys and bad values are errors that name the key path, raised as ``ConfigError``
before anything else runs.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

from pydantic import ValidationError

from engine.config.files import (
    ENV_PREFIX,
    RESERVED_ENV,
    config_file,
    deep_merge,
    env_settings_names,
    origins,
)
from engine.config.settings import Settings
from engine.errors import ConfigError


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """What the environment sets, parsed by pydantic-settings' own env source."""
    known = set(Settings.model_fields)
    if not env_settings_names(environ):
        return {}  # the usual case: no need to import pydantic-settings
    from pydantic_settings import EnvSettingsSource

    for name in environ:
        if not name.startswith(ENV_PREFIX) or name in RESERVED_ENV:
            continue
        top = name[len(ENV_PREFIX):].split("__", 1)[0].lower()
        if top not in known:
            raise ConfigError(f"unknown setting in environment variable {name}",
                              f"known top-level keys: {', '.join(sorted(known))}")
    source = EnvSettingsSource(Settings, case_sensitive=False, env_prefix=ENV_PREFIX,
                               env_nested_delimiter="__", env_parse_none_str="null")
    # read the given mapping, not os.environ
    source.env_vars = {k.lower(): v for k, v in environ.items()}
    try:
        return source()
    except Exception as exc:  # pydantic-settings raises SettingsError for unparsable JSON values
        raise ConfigError(f"invalid environment setting: {exc}") from None


def _format_validation_error(exc: ValidationError, sources: dict[str, str]) -> ConfigError:
    err = exc.errors()[0]
    path = ".".join(str(p) for p in err["loc"])
    where = sources.get(path)
    src = f" (from {where})" if where else ""
    if err["type"] == "extra_forbidden":
        parent = path.rsplit(".", 1)[0] if "." in path else ""
        return ConfigError(f"unknown config key '{path}'{src}",
                           "check the spelling; see config.example.yaml"
                           + (f" for the keys of '{parent}'" if parent else ""))
    more = f" and {len(exc.errors()) - 1} more" if len(exc.errors()) > 1 else ""
    msg = str(err['msg']).removeprefix("Value error, ")
    return ConfigError(f"invalid value for '{path}'{src}: {msg}{more}",
                       "see config.example.yaml for the allowed values")


def load_settings(config_path: str | os.PathLike[str] | None = None,
                  overrides: Mapping[str, Any] | None = None,
                  environ: Mapping[str, str] | None = None) -> Settings:
    """Build the effective settings from flags, environment, file and defaults.

    ``config_path`` is ``--config``; when empty, ``PARLEY_CONFIG`` then the default path are
    tried (the default path may be absent; an explicit one must exist). ``overrides`` are
    nested dicts from command-line flags. Raises ``ConfigError`` naming the key path.
    """
    environ = os.environ if environ is None else environ
    path, file_values = config_file(config_path, environ)
    env_values = _env_values(environ)
    flag_values = dict(overrides or {})
    sources = origins(("file", file_values), ("env", env_values), ("flag", flag_values))
    merged = deep_merge(deep_merge(file_values, env_values), flag_values)
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        raise _format_validation_error(exc, sources) from None
    settings._sources = sources
    settings._config_path = path
    _check_references(settings)
    return settings


def _check_references(settings: Settings) -> None:
    """Names that must point at a configured provider."""
    if settings.chat.provider and settings.chat.provider not in settings.providers:
        raise ConfigError(
            f"chat.provider '{settings.chat.provider}' is not defined under 'providers'",
            "add it under providers: or leave chat.provider empty for offline answers")
    for name, persona in settings.personas.items():
        if persona.provider and persona.provider != "extractive" \
                and persona.provider not in settings.providers:
            raise ConfigError(
                f"persona '{name}' names provider '{persona.provider}', which is not defined "
                "under 'providers'", f"fix personas.{name}.provider or add the provider")
    for server in settings.mcp_servers:
        if not server or not all(ch.isalnum() or ch in "-_" for ch in server) or \
                server == "parley" or "__" in server:
            raise ConfigError(f"mcp_servers.{server}: a server name uses letters, digits, '-' "
                              "and single '_' ('parley' is Parley's own)",
                              "rename it, e.g. 'files' or 'github'")
    _check_persona_tools(settings)
    emb = settings.embedding.provider
    if emb != "local" and emb not in settings.providers:
        raise ConfigError(f"embedding.provider '{emb}' is not defined under 'providers'",
                          "use 'local' for the bundled model or add the provider")


def _check_persona_tools(settings: Settings) -> None:
    """A persona's tools must name Parley's own or a configured server (after the server
    names themselves were checked); kept in the canonical form sessions store."""
    for name, persona in settings.personas.items():
        if persona.tools is None:
            continue
        from engine.errors import UsageError
        from engine.tools.selection import parse_selection

        servers = ["parley", *settings.mcp_servers]
        try:
            persona.tools = parse_selection(persona.tools, servers)
        except UsageError as exc:
            raise ConfigError(f"persona '{name}': {exc.message}",
                              f"fix personas.{name}.tools ({exc.hint})") from None


def effective_items(settings: Settings) -> list[tuple[str, Any, str]]:
    """(dotted key, value with secrets masked, origin) for every leaf setting."""
    data = settings.model_dump(mode="json")
    out: list[tuple[str, Any, str]] = []

    def walk(node: Any, prefix: str) -> None:
        if isinstance(node, dict) and node:
            for key, value in node.items():
                walk(value, f"{prefix}.{key}" if prefix else key)
            return
        origin = settings.sources.get(prefix, "default")
        value = node
        if prefix.endswith("api_key") and node:
            value = "**********"
        out.append((prefix, value, origin))

    walk(data, "")
    return out
