"""Typed errors the engine raises.

Every error a user can cause or fix carries a one-line message and a ``hint`` that says what
to do. Front ends print ``str(error)`` and the hint; they never need a traceback for these.
The ``exit_code`` is what the CLI exits with (1 for runtime errors, 2 for usage/config).
"""

from __future__ import annotations


class ParleyError(Exception):
    """Base class of every expected error. ``hint`` tells the user what to do next."""

    exit_code: int = 1

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The message and the hint on one line, for stderr and notifications."""
        return f"{self.message} ({self.hint})" if self.hint else self.message


class ConfigError(ParleyError):
    """The configuration file, an environment variable or a flag is invalid."""

    exit_code = 2


class UsageError(ParleyError):
    """A command was called with arguments that cannot work."""

    exit_code = 2


class DatabaseError(ParleyError):
    """The database cannot be reached, opened or used."""


class SchemaOutOfDate(DatabaseError):
    """The database schema is older than this version of Parley."""


class SchemaTooNew(DatabaseError):
    """The database was written by a newer version of Parley."""


class NotFound(ParleyError):
    """A session, message, document or collection with that id or name does not exist."""


class KeyError_(ParleyError):
    """Base class of encryption key problems (named with a trailing underscore so it does not
    shadow the builtin ``KeyError``)."""


class KeyMismatch(KeyError_):
    """The key does not match the one this database was encrypted with."""


class KeyMissing(KeyError_):
    """No key is available for a database that holds encrypted data."""


class KeyFileInsecure(KeyError_):
    """The key file can be read by other users."""


class DecryptionError(KeyError_):
    """One stored value cannot be decrypted (corrupted, or written under another key)."""


class EmbedderMismatch(ParleyError):
    """A collection was indexed with a different embedder than the one configured."""


class IngestError(ParleyError):
    """A file could not be ingested (the run records it and goes on)."""


class ProviderError(ParleyError):
    """A model server failed. Subclasses say how."""


class ProviderUnreachable(ProviderError):
    """The server did not answer at the configured URL."""


class ProviderAuthError(ProviderError):
    """The server refused the API key (HTTP 401/403)."""


class UnknownModel(ProviderError):
    """The server does not have the requested model."""


class ContextTooLong(ProviderError):
    """The prompt does not fit the model's context window."""


class StreamInterrupted(ProviderError):
    """The stream stopped before the model finished (hang-up, timeout, cancel)."""


class BudgetExceeded(ParleyError):
    """A call would pass the configured spending budget and the budget refuses it."""


class ConnectionLost(DatabaseError):
    """The database server went away (restart, failover, network) under an operation. What
    was being written was rolled back; the next operation reconnects."""
