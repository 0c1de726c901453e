"""Encryption at rest: where the key comes from, and the cipher the columns use.

Key sources, in order: the environment variable named by ``crypto.key_env`` (a Fernet key,
or any other string taken as a passphrase and run through scrypt with this database's
salt), then the key file (created with mode 0600 on first run).

The database stores a key check value (a Fernet token of a fixed text) so a wrong key is
detected when the database opens, before anything is read or written.
"""

from __future__ import annotations

import base64
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from engine.config import Settings
from engine.errors import KeyFileInsecure, KeyMismatch

CHECK_PLAINTEXT = "parley-key-check-v1"
META_KEY_CHECK = "key_check"
META_KDF_SALT = "kdf_salt"


@dataclass(frozen=True)
class KeyMaterial:
    """A resolved key and where it came from (for messages and ``parley key status``)."""

    source: str  # "env:NAME (fernet key)" | "env:NAME (passphrase)" | "file:PATH"
    passphrase: str | None = None  # needs the database's salt before it becomes a key
    key: bytes | None = None


class FernetCipher:
    """Encrypts with the first key, decrypts with any (MultiFernet), str in and out."""

    def __init__(self, keys: list[bytes]) -> None:
        self.keys = keys
        self._fernet = MultiFernet([Fernet(k) for k in keys])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise InvalidToken("cannot decrypt: corrupted or written under another key") from None

    def check_value(self) -> str:
        return self.encrypt(CHECK_PLAINTEXT)

    def verify(self, check_value: str) -> bool:
        try:
            return Fernet(self.keys[0]).decrypt(check_value.encode("ascii")) == \
                CHECK_PLAINTEXT.encode()
        except (InvalidToken, ValueError):
            return False


def is_fernet_key(value: str) -> bool:
    try:
        return len(base64.urlsafe_b64decode(value.encode("ascii"))) == 32 and len(value) == 44
    except (ValueError, UnicodeEncodeError):
        return False


def derive_key(passphrase: str, salt: bytes) -> bytes:
    """A Fernet key from a passphrase: scrypt (n=2**15, r=8, p=1), about 50 ms here."""
    kdf = Scrypt(salt=salt, length=32, n=2**15, r=8, p=1)
    return base64.urlsafe_b64encode(kdf.derive(passphrase.encode("utf-8")))


def check_key_file_permissions(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileInsecure(
            f"key file {path} can be read by other users (mode {stat.S_IMODE(mode):o})",
            f"run: chmod 600 {path}")


def resolve_key(settings: Settings, *, create: bool) -> KeyMaterial | None:
    """Find the key; create the key file when ``create`` and no key exists anywhere."""
    env_value = os.environ.get(settings.crypto.key_env)
    if env_value:
        name = settings.crypto.key_env
        if is_fernet_key(env_value):
            return KeyMaterial(source=f"env:{name} (fernet key)", key=env_value.encode("ascii"))
        return KeyMaterial(source=f"env:{name} (passphrase)", passphrase=env_value)
    path = settings.key_file_path()
    if path.exists():
        check_key_file_permissions(path)
        value = path.read_text(encoding="ascii").strip()
        if not is_fernet_key(value):
            raise KeyMismatch(f"key file {path} does not hold a Fernet key",
                              "restore the key file from your backup")
        return KeyMaterial(source=f"file:{path}", key=value.encode("ascii"))
    if not create:
        return None
    return KeyMaterial(source=f"file:{path}", key=write_new_key_file(path))


def write_new_key_file(path: Path) -> bytes:
    """Create a key file readable by its owner only (never world-readable, even briefly)."""
    key = Fernet.generate_key()
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(key.decode("ascii") + "\n")
    return key
