"""Parley's settings: one typed model, four sources, and where each value came from.

Sources, highest first: command-line flags (passed in as ``overrides``), the environment
(``PARLEY_`` prefix, ``__`` between nested keys), the YAML config file, the defaults.
``PARLEY_HOME`` moves the config file, the key file and the default database under one
directory; without it they live in the per-user directories from platformdirs.

Unknown keys and bad values are errors that name the key path, raised as ``ConfigError``
before anything else runs.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, field_validator

from engine.errors import ConfigError

ENV_PREFIX = "PARLEY_"
# Environment variables with the prefix that are not settings.
RESERVED_ENV = {"PARLEY_HOME", "PARLEY_CONFIG", "PARLEY_KEY"}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DatabaseSettings(_Section):
    """Where Parley keeps its data."""

    url: str | None = None
    """SQLAlchemy URL. Empty: an SQLite file ``parley.db`` in the data directory.
    PostgreSQL: ``postgresql+asyncpg://user:pass@host/db``."""
    busy_timeout_ms: int = Field(5000, ge=0)
    """SQLite: how long a writer waits for another process's lock before failing."""
    @field_validator("url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        from sqlalchemy.engine import make_url

        try:
            backend = make_url(value).get_backend_name()
        except Exception:  # SQLAlchemy raises ArgumentError or ValueError for garbage
            raise ValueError("not a database URL: use sqlite:///PATH or "
                             "postgresql+asyncpg://USER:PASS@HOST/DB") from None
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported backend '{backend}': Parley supports SQLite and "
                             "PostgreSQL")
        return value

    backup_before_upgrade: bool = True
    """SQLite: copy the file to ``<name>.bak-<revision>`` before migrating it."""
    pool_size: int = Field(5, ge=1)
    """PostgreSQL: connections kept open."""
    echo: bool = False
    """Log every SQL statement (debugging)."""
    reconnect_timeout_s: float = Field(60.0, ge=0)
    """PostgreSQL: how long a long write (``parley ingest``) waits for a server that went
    away (a restart) before it stops; the file being written is then written again."""


class CryptoSettings(_Section):
    """Encryption at rest of chat history."""

    key_env: str = "PARLEY_KEY"
    """Environment variable holding a Fernet key or a passphrase (checked first)."""
    key_file: Path | None = None
    """Key file, created with mode 0600 on first run. Empty: ``key`` in the config dir."""
    rotate_batch_size: int = Field(500, ge=1)
    """Values re-encrypted per transaction by ``parley key rotate``."""


class EmbeddingSettings(_Section):
    """How text is turned into vectors."""

    provider: str = "local"
    """``local`` (the bundled offline model) or the name of an entry under ``providers``
    whose server offers ``/embeddings``."""
    model: str = "all-minilm-l6-v2"
    """Model name: for ``local`` the bundled model, else the server's model id."""
    batch_size: int = Field(16, ge=1, le=1024)
    """Texts embedded per call."""
    threads: int = Field(0, ge=0)
    """CPU threads for the local model. 0: all cores."""


class RetrievalSettings(_Section):
    """Hybrid search and ingestion."""

    top_k: int = Field(6, ge=1, le=200)
    """Sources given to the model per question (and hits shown by search by default)."""
    candidates: int = Field(100, ge=1, le=2000)
    """Hits taken from each of keyword and vector search before fusion."""
    fusion: Literal["convex", "rrf"] = "convex"
    """How the two rankings combine. ``convex``: weighted sum of each ranking's scores
    scaled to 0..1 over its candidates (SciFact nDCG@10 0.725, against 0.716 for the best
    tuned rrf). ``rrf``: weighted reciprocal rank fusion, which ignores the scores."""
    rrf_k: float = Field(60.0, gt=0)
    """Reciprocal rank fusion constant (fusion ``rrf``): larger flattens the rank curve."""
    keyword_weight: float = Field(1.0, ge=0)
    """Weight of the keyword (BM25) ranking in the fusion."""
    vector_weight: float = Field(1.0, ge=0)
    """Weight of the vector ranking in the fusion."""
    chunk_tokens: int = Field(200, ge=32, le=2048)
    """Token budget of one chunk."""
    chunk_overlap: int = Field(30, ge=0, le=512)
    """Tokens shared by neighbouring chunks."""
    max_file_mb: float = Field(50.0, gt=0)
    """Files larger than this are skipped with a reason."""
    default_collection: str = "default"
    """Collection ``ingest`` (and commands on one collection) use when none is named. Chats
    search every collection unless scoped."""
    ef_search: int = Field(200, ge=1, le=1000)
    """PostgreSQL HNSW search breadth (higher: better recall, slower). 200 finds 97-99% of
    the exact 100 nearest chunks at 10k-100k chunks (100: 93-96%)."""
    quantize_above: int = Field(50_000, ge=0)
    """SQLite: a collection with more chunks than this is searched by 1-bit sign codes
    first, then re-ranked exactly (10x faster at 100k chunks, same top 10 in 998 of
    1,000). 0: always exact."""
    bm25_index: Literal["auto", "off"] = "auto"
    """PostgreSQL keyword search. ``auto``: use the server's ``pg_textsearch`` BM25 index
    when it has one (milliseconds at a million chunks), else exact BM25 in SQL. ``off``:
    always exact BM25 in SQL."""


class BudgetSettings(_Section):
    """Spending limits for hosted models."""

    daily: float | None = Field(None, ge=0)
    """Maximum cost per day (in the price table's currency). Empty: no limit."""
    monthly: float | None = Field(None, ge=0)
    """Maximum cost per calendar month. Empty: no limit."""
    action: Literal["warn", "refuse"] = "warn"
    """What to do before a call that would pass a limit."""


class ChatSettings(_Section):
    """Answering questions."""

    provider: str | None = None
    """Name of an entry under ``providers``. Empty: the offline extractive answerer."""
    model: str | None = None
    """Model id on that provider."""
    system_prompt: str | None = None
    """System prompt for new sessions. Empty: Parley's grounded-answer prompt."""
    temperature: float | None = Field(None, ge=0, le=2)
    """Sampling temperature. Empty: the server's default."""
    max_tokens: int | None = Field(None, ge=1)
    """Longest answer in tokens. Empty: the server's default."""
    rag: bool = True
    """Search the session's collections for sources before answering."""
    budget: BudgetSettings = BudgetSettings()


class ModelSettings(_Section):
    """What Parley needs to know about one model."""

    context_window: int = Field(8192, ge=256)
    """Tokens the model accepts (prompt and answer together)."""
    input_price: float = Field(0.0, ge=0)
    """Price per million prompt tokens."""
    output_price: float = Field(0.0, ge=0)
    """Price per million completion tokens."""


class ProviderSettings(_Section):
    """A model server."""

    kind: Literal["openai", "extractive"] = "openai"
    """``openai``: any OpenAI-compatible server (OpenAI, Ollama, llama.cpp, vLLM, LM Studio).
    ``extractive``: no model, answers with cited sentences from the sources."""
    base_url: str | None = None
    """API root, e.g. ``http://127.0.0.1:11434/v1``."""
    api_key: SecretStr | None = None
    """API key (prefer ``api_key_env``)."""
    api_key_env: str | None = None
    """Environment variable holding the API key."""
    timeout: float = Field(60.0, gt=0)
    """Seconds to wait for the server to answer or send the next piece."""
    connect_timeout: float = Field(5.0, gt=0)
    """Seconds to wait for a connection."""
    max_retries: int = Field(2, ge=0, le=10)
    """Retries of a failed call before the first token arrives."""
    models: dict[str, ModelSettings] = {}
    """Per-model context window and prices."""


class UISettings(_Section):
    """The terminal interface."""

    theme: str = "textual-dark"
    """A Textual theme name. Unset, the app uses the theme last picked in it."""
    show_sidebar: bool = True
    """Show the sessions sidebar at start."""
    editor: str | None = None
    """Command that opens a source at a line. Empty: ``$EDITOR``, then ``$PAGER``."""
    keys: dict[str, str] = {}
    """Keys per action (``chat.new_session: ctrl+n``; several: ``"ctrl+n,f6"``). The names
    and the check for conflicts are the terminal UI's (``tui.keys``)."""
    enter_sends: bool = True
    """Enter sends the question (Ctrl+J adds a line). False: Enter adds a line and Ctrl+J
    or Alt+Enter sends."""

    @field_validator("keys", mode="before")
    @classmethod
    def _flat_keys(cls, value: Any) -> Any:
        """``chat: {new_session: ctrl+n}`` is ``chat.new_session: ctrl+n``; a list of keys
        is the comma-separated string."""
        if not isinstance(value, Mapping):
            return value
        out: dict[str, Any] = {}
        for name, keys in value.items():
            if isinstance(keys, Mapping):
                out.update({f"{name}.{k}": v for k, v in cls._flat_keys(keys).items()})
            elif isinstance(keys, list | tuple):
                out[str(name)] = ",".join(str(k) for k in keys)
            else:
                out[str(name)] = keys
        return out


class ChatParams(_Section):
    """Per-session (or per-persona) parameters; empty ones keep the configured value."""

    temperature: float | None = Field(None, ge=0, le=2)
    """Sampling temperature."""
    max_tokens: int | None = Field(None, ge=1)
    """Longest answer in tokens."""
    top_k: int | None = Field(None, ge=1, le=200)
    """Sources given to the model per question."""


class PersonaSettings(_Section):
    """A named chat preset (``parley ask --persona NAME``, Ctrl+N in the app)."""

    description: str | None = None
    """One line shown when choosing a persona."""
    provider: str | None = None
    """Name of an entry under ``providers``. Empty: ``chat.provider``."""
    model: str | None = None
    """Model id on that provider. Empty: the provider's configured model."""
    system_prompt: str | None = None
    """System prompt of its chats."""
    collections: list[str] = []
    """Collections its chats search. Empty: all of them."""
    rag: bool | None = None
    """Search documents before answering. Empty: ``chat.rag``."""
    params: ChatParams = ChatParams()
    first_message: str | None = None
    """A first question put in the prompt box (and asked by ``ask --persona`` with no
    question)."""


class ToolsSettings(_Section):
    """Tools the model may call: MCP servers and Parley's own search."""

    enabled: bool = False
    """Offer tools to models at all (``parley ask --tools`` turns them on for one question)."""
    approval: Literal["ask", "auto", "never"] = "ask"
    """Tools not in ``allow``: ``ask`` before each call, ``auto`` run them, ``never`` refuse
    them (the model is told)."""
    allow: list[str] = ["parley.search"]
    """``server.tool`` globs that run without asking (``files.read_*``, ``parley.*``)."""
    deny: list[str] = []
    """``server.tool`` globs never offered to the model; deny beats allow and every answer."""
    ask_when_sources: bool = True
    """While retrieved passages or another server's results are in the prompt, tools not in
    ``allow`` ask even under ``approval: auto`` (injection through documents)."""
    builtin_search: bool = True
    """Offer Parley's own document search as the tool ``parley.search``."""
    max_rounds: int = Field(6, ge=1, le=100)
    """Model requests per answer that may carry tool calls; the last goes without tools."""
    max_calls: int = Field(16, ge=1, le=1000)
    """Tool calls per answer, across rounds."""
    max_repeats: int = Field(2, ge=1, le=100)
    """The same call (tool and arguments) runs this many times per answer; more is refused."""
    call_timeout: float = Field(60.0, gt=0)
    """Seconds a tool call may take."""
    startup_timeout: float = Field(30.0, gt=0)
    """Seconds an MCP server may take to start and list its tools."""
    max_result_chars: int = Field(16000, ge=200)
    """Characters of a result sent to the model: longer ones keep head and tail, marked."""
    store_max_chars: int = Field(1_000_000, ge=1000)
    """Characters of a result stored (encrypted) with the answer."""
    parallel_calls: bool = True
    """Run the calls a model asks for in one round at the same time (approval is still
    asked one by one, in the model's order); false runs them one after another."""


class MCPServerSettings(_Section):
    """An MCP server: a command (stdio) or a URL (Streamable HTTP)."""

    command: str | None = None
    """Program to start (stdio). It gets only HOME, PATH, SHELL, TERM, USER, LOGNAME and
    ``env``: never Parley's variables, keys or database URL."""
    args: list[str] = []
    """Its arguments (``~`` is expanded)."""
    env: dict[str, str] = {}
    """Variables added to its environment; ``${VAR}`` / ``${VAR:-default}`` read ours."""
    cwd: str | None = None
    """Working directory of the command."""
    url: str | None = None
    """Streamable HTTP endpoint, e.g. ``http://127.0.0.1:8000/mcp``."""
    headers: dict[str, str] = {}
    """HTTP headers, ``${VAR}`` expanded: ``Authorization: "Bearer ${TOKEN}"``."""
    enabled: bool = True
    """Offer this server's tools."""
    call_timeout: float | None = Field(None, gt=0)
    """Seconds a call may take on this server. Empty: ``tools.call_timeout``."""
    trusted: bool = False
    """Start this command without asking first. Otherwise the first start of a command
    line (command, args, env names), and of every changed one, waits for the user's yes."""

    @field_validator("url")
    @classmethod
    def _http_url(cls, value: str | None) -> str | None:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("an MCP server url must start with http:// or https://")
        return value or None

    def model_post_init(self, _context: Any) -> None:
        if bool(self.command) == bool(self.url):
            raise ValueError("give either 'command' (a local server) or 'url' (an HTTP one)")


class WatchSettings(_Section):
    """Watched folders (``parley watch`` and the app)."""

    debounce_ms: int = Field(500, ge=50, le=60_000)
    """Changes are collected until the folder has been quiet this long, then synced in one
    run (an editor's save-rename-write burst, a checkout touching thousands of files)."""
    in_app: bool = True
    """Keep the watched folders in sync while the app is open."""


class Settings(BaseModel):
    """Every setting of Parley. See ``config.example.yaml`` for a commented copy.

    A plain model, not pydantic-settings' ``BaseSettings``: ``load_settings`` merges the
    sources itself (to know each value's origin), and importing pydantic-settings (dotenv,
    cloud secret sources) costs start-up time every launch; it is imported only when the
    environment holds settings (``_env_values``).
    """

    model_config = ConfigDict(extra="forbid", validate_assignment=True, validate_default=True)

    user: str = Field(default_factory=lambda: _default_user())
    """The user whose sessions and documents Parley shows on SQLite. On PostgreSQL the user
    is the connecting role; a value naming another role is refused (``engine.teams``)."""
    database: DatabaseSettings = DatabaseSettings()
    crypto: CryptoSettings = CryptoSettings()
    embedding: EmbeddingSettings = EmbeddingSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    chat: ChatSettings = ChatSettings()
    providers: dict[str, ProviderSettings] = {}
    ui: UISettings = UISettings()
    personas: dict[str, PersonaSettings] = {}
    tools: ToolsSettings = ToolsSettings()
    mcp_servers: dict[str, MCPServerSettings] = {}
    watch: WatchSettings = WatchSettings()

    # Not settings: where this configuration was read from, filled by load_settings.
    _sources: dict[str, str] = {}
    _config_path: Path | None = None

    # -- resolved paths --------------------------------------------------------------------
    def home_dirs(self) -> tuple[Path, Path]:
        """(config dir, data dir)."""
        return config_dir(), data_dir()

    def database_url(self) -> str:
        """The effective database URL (the SQLite default when none is set)."""
        if self.database.url:
            url = self.database.url
            if url.startswith("sqlite:///") or url.startswith("sqlite+aiosqlite:///"):
                url = "sqlite+aiosqlean:///" + url.split(":///", 1)[1]
            return url
        return f"sqlite+aiosqlean:///{data_dir() / 'parley.db'}"

    def key_file_path(self) -> Path:
        """The effective key file path."""
        if self.crypto.key_file:
            return Path(self.crypto.key_file).expanduser()
        return config_dir() / "key"

    @property
    def sources(self) -> dict[str, str]:
        """Where each value came from: dotted key -> "flag" | "env" | "file" | "default"."""
        return dict(self._sources)

    @property
    def config_path(self) -> Path | None:
        """The config file that was read, if any."""
        return self._config_path


def _default_user() -> str:
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


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist",
                          "check --config or PARLEY_CONFIG") from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
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


def _env_values(environ: Mapping[str, str]) -> dict[str, Any]:
    """What the environment sets, parsed by pydantic-settings' own env source."""
    known = set(Settings.model_fields)
    if not any(n.upper().startswith(ENV_PREFIX) and n.upper() not in RESERVED_ENV
               for n in environ):
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


def _deep_merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in top.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _leaf_paths(data: Mapping[str, Any], prefix: str = "") -> list[str]:
    paths: list[str] = []
    for key, value in data.items():
        path = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            paths.extend(_leaf_paths(value, path + "."))
        else:
            paths.append(path)
    return paths


def _format_validation_error(exc: ValidationError, origins: dict[str, str]) -> ConfigError:
    err = exc.errors()[0]
    path = ".".join(str(p) for p in err["loc"])
    where = origins.get(path)
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
    path: Path | None = None
    file_values: dict[str, Any] = {}
    explicit = config_path or environ.get("PARLEY_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        file_values = _read_yaml(path)
    else:
        candidate = default_config_path()
        if candidate.exists():
            path = candidate
            file_values = _read_yaml(path)
    env_values = _env_values(environ)
    flag_values = dict(overrides or {})

    origins: dict[str, str] = {}
    for name, values in (("file", file_values), ("env", env_values), ("flag", flag_values)):
        for leaf in _leaf_paths(values):
            origins[leaf] = name
            # a section set by a higher source marks its leaves too
            for other in list(origins):
                if other.startswith(leaf + "."):
                    origins[other] = name
    merged = _deep_merge(_deep_merge(file_values, env_values), flag_values)
    try:
        settings = Settings(**merged)
    except ValidationError as exc:
        raise _format_validation_error(exc, origins) from None
    settings._sources = origins
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
    emb = settings.embedding.provider
    if emb != "local" and emb not in settings.providers:
        raise ConfigError(f"embedding.provider '{emb}' is not defined under 'providers'",
                          "use 'local' for the bundled model or add the provider")


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
