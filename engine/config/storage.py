"""Settings of where data lives and how it is found: the database, encryption at rest,
embedding, retrieval and ingestion, watched folders."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator

from engine.config.base import Section as _Section


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




class WatchSettings(_Section):
    """Watched folders (``parley watch`` and the app)."""

    debounce_ms: int = Field(500, ge=50, le=60_000)
    """Changes are collected until the folder has been quiet this long, then synced in one
    run (an editor's save-rename-write burst, a checkout touching thousands of files)."""
    in_app: bool = True
    """Keep the watched folders in sync while the app is open."""
