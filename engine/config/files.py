"""Where the configuration lives and how its sources are read, without pydantic.

The directories (``PARLEY_HOME`` or the per-user ones), the YAML file, the merge of the
sources and the origin of each value. Nothing here imports pydantic: the terminal UI reads
its first frame's few keys through this module (``engine.config.early``) and validates the
whole configuration right after that frame.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.errors import ConfigError

ENV_PREFIX = "PARLEY_"
# Environment variables with the prefix that are not settings.
RESERVED_ENV = {"PARLEY_HOME", "PARLEY_CONFIG", "PARLEY_KEY"}


def default_user() -> str:
    import getpass  # termios and pwd: only when the settings are validated

    try:
        return getpass.getuser()
    except Exception:  # no passwd entry (containers): still a stable name
        return "default"


def config_dir() -> Path:
    """Directory of the config file and key file (``PARLEY_HOME`` if set)."""
    home = os.environ.get("PARLEY_HOME")
    if home:
        return Path(home).expanduser()
    from platformdirs import user_config_path

    return user_config_path("parley")


def data_dir() -> Path:
    """Directory of the default database (``PARLEY_HOME`` if set)."""
    home = os.environ.get("PARLEY_HOME")
    if home:
        return Path(home).expanduser()
    from platformdirs import user_data_path

    return user_data_path("parley")


def default_config_path() -> Path:
    """The config file used when neither ``--config`` nor ``PARLEY_CONFIG`` is set."""
    return config_dir() / "config.yaml"


def config_file(config_path: str | os.PathLike[str] | None,
                environ: Mapping[str, str]) -> tuple[Path | None, dict[str, Any]]:
    """(the config file read, if any; its values). ``config_path`` is ``--config``; when
    empty, ``PARLEY_CONFIG`` then the default path are tried (the default path may be
    absent; an explicit one must exist)."""
    explicit = config_path or environ.get("PARLEY_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        return path, read_yaml(path)
    candidate = default_config_path()
    if candidate.exists():
        return candidate, read_yaml(candidate)
    return None, {}


def read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist",
                          "check --config or PARLEY_CONFIG") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    import yaml  # only when there is a file: a launch without one never loads PyYAML

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"config file {path}{where}: {problem}",
                          "fix the YAML syntax (indentation, quotes, colons)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path}: the top level must be a mapping of keys",
                          "see config.example.yaml")
    return data


def env_settings_names(environ: Mapping[str, str]) -> list[str]:
    """The environment variables that set settings (``PARLEY_`` ones but the reserved)."""
    return [n for n in environ
            if n.upper().startswith(ENV_PREFIX) and n.upper() not in RESERVED_ENV]


def deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def leaf_paths(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            paths.extend(leaf_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


def origins(*sources: tuple[str, Mapping[str, Any]]) -> dict[str, str]:
    """Dotted key -> the name of the highest source setting it (``sources`` lowest first)."""
    out: dict[str, str] = {}
    for name, values in sources:
        for leaf in leaf_paths(values):
            out[leaf] = name
            # a section set by a higher source marks its leaves too
            for other in list(out):
                if other.startswith(leaf + "."):
                    out[other] = name
    return out


def flat_keys(value: Any) -> Any:
    """``ui.keys`` as written (``chat: {new_session: ctrl+n}``, lists of keys) as the flat
    mapping it means (``chat.new_session: ctrl+n``, comma-separated keys)."""
    if not isinstance(value, Mapping):
        return value
    out: dict[str, Any] = {}
    for name, keys in value.items():
        if isinstance(keys, Mapping):
            out.update({f"{name}.{k}": v for k, v in flat_keys(keys).items()})
        elif isinstance(keys, list | tuple):
            out[str(name)] = ",".join(str(k) for k in keys)
        else:
            out[str(name)] = keys
    return out
