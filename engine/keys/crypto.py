"""Encryption at rest: where the key comes from, and the cipher the columns use.

Key sources, in order: the environment variable named by ``crypto.key_env`` (a Fernet key,
or any other string taken as a passphrase and run through scrypt with this database's
salt), then the key file (created with mode 0600 on first run).

The key file holds one Fernet key per line. The first line is the key in use; any further
lines are older keys kept only while ``parley key rotate`` re-encrypts values still written
under them. The file is always replaced atomically (write, fsync, rename), so a crash
leaves either the old file or the new one, never half of each.

The database stores each user's key check value (a Fernet token of a fixed text, in
``user_keys``) so a wrong key is detected when the database opens, before anything is read
or written.
"""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Sequence
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
    retiring: tuple[bytes, ...] = ()  # older keys listed after the first in the key file


class FernetCipher:
    """Encrypts with the first key, decrypts with any (MultiFernet), str in and out."""

    def __init__(self, keys: Sequence[bytes]) -> None:
        unique = list(dict.fromkeys(keys))  # the same key twice would only slow failures down
        self.keys = unique
        self._fernet = MultiFernet([Fernet(k) for k in unique])
        self._primary = Fernet(unique[0])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, UnicodeEncodeError):
            raise InvalidToken("cannot decrypt: corrupted or written under another key") from None

    def rotate(self, token: str) -> str:
        """The same value encrypted under the first key (raises InvalidToken if unreadable)."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except UnicodeEncodeError:
            raise InvalidToken("not a Fernet token") from None

    def primary_reads(self, token: str) -> bool:
        """Whether the first key alone decrypts ``token``."""
        try:
            self._primary.decrypt(token.encode("ascii"))
            return True
        except (InvalidToken, UnicodeEncodeError):
            return False

    def check_value(self) -> str:
        return self.encrypt(CHECK_PLAINTEXT)

    def verify(self, check_value: str) -> bool:
        return key_matches(self.keys[0], check_value)


def key_matches(key: bytes, check_value: str) -> bool:
    """Whether ``key`` is the key that wrote ``check_value``."""
    try:
        return Fernet(key).decrypt(check_value.encode("ascii")) == CHECK_PLAINTEXT.encode()
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


def secret_to_key(value: str, salt_hex: str | None) -> bytes | None:
    """A Fernet key from an environment value: used as is, or derived when a passphrase.

    None for a passphrase when the database has no salt yet (it never used a passphrase).
    """
    if is_fernet_key(value):
        return value.encode("ascii")
    if salt_hex is None:
        return None
    return derive_key(value, bytes.fromhex(salt_hex))


def check_key_file_permissions(path: Path) -> None:
    mode = path.stat().st_mode
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeyFileInsecure(
            f"key file {path} can be read by other users (mode {stat.S_IMODE(mode):o})",
            f"run: chmod 600 {path}")


def read_key_file(path: Path) -> list[bytes]:
    """The keys in a key file, the one in use first (permissions checked first)."""
    check_key_file_permissions(path)
    lines = [line.strip() for line in path.read_text(encoding="ascii", errors="replace")
             .splitlines() if line.strip()]
    if not lines or not all(is_fernet_key(line) for line in lines):
        raise KeyMismatch(f"key file {path} does not hold a Fernet key",
                          "restore the key file from your backup")
    return [line.encode("ascii") for line in lines]


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
        keys = read_key_file(path)
        return KeyMaterial(source=f"file:{path}", key=keys[0], retiring=tuple(keys[1:]))
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
        handle.flush()
        os.fsync(handle.fileno())
    return key


def replace_key_file(path: Path, keys: Sequence[bytes]) -> None:
    """Atomically replace the key file with ``keys`` (the one in use first), mode 0600.

    Written to a temporary file in the same directory, fsynced, renamed over the old file,
    and the directory fsynced: after a crash the file holds either all old or all new keys.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.fchmod(fd, 0o600)  # a leftover temporary file may have had another mode
        with os.fdopen(fd, "w", encoding="ascii") as handle:
            handle.write("".join(k.decode("ascii") + "\n" for k in keys))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
