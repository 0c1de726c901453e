"""Sealing a backup archive: AES-256-GCM in 1 MiB segments, streamed both ways.

The layout is a magic line, a JSON header (mode, salts; not secret, but authenticated as
every segment's associated data), then segments of ``4-byte length + ciphertext``. Each
segment's nonce is a random 7-byte prefix, its 4-byte index and a last-segment flag (the
STREAM construction), so a reordered, cut or extended archive fails authentication and a
truncated one misses its last segment. The key comes from a passphrase (scrypt) or from the
user's Fernet key (HKDF): with neither, the archive stays unreadable, and the chat history
inside is Fernet tokens besides.
"""

from __future__ import annotations

import base64
import json
import os
from typing import BinaryIO

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from engine.portable.results import ArchiveError

MAGIC = b"PARLEY-SEALED-BACKUP 1\n"
SEGMENT = 1 << 20
_TAG = 16


def is_sealed(path: str | os.PathLike[str]) -> bool:
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


def archive_key(mode: str, salt: bytes, *, passphrase: str | None = None,
                fernet_key: bytes | None = None) -> bytes:
    if mode == "passphrase":
        if not passphrase:
            raise ArchiveError("this archive is sealed with a passphrase",
                               "pass --passphrase (prompt) or --passphrase-env VAR")
        return Scrypt(salt=salt, length=32, n=2**15, r=8, p=1).derive(passphrase.encode())
    if fernet_key is None:
        raise ArchiveError("this archive is sealed with a Parley key and none is available",
                           "set the key file or $PARLEY_KEY that the backed-up database used")
    ikm = base64.urlsafe_b64decode(fernet_key)
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=salt,
                info=b"parley-backup-v1").derive(ikm)


class SealingWriter:
    """A write-only file object that seals what is written to ``raw``."""

    def __init__(self, raw: BinaryIO, mode: str, salt: bytes, key: bytes,
                 kdf_salt: str | None = None) -> None:
        self.prefix = os.urandom(7)
        header = json.dumps({"mode": mode, "salt": salt.hex(), "kdf_salt": kdf_salt,
                             "nonce_prefix": self.prefix.hex(), "segment": SEGMENT}).encode()
        raw.write(MAGIC + header + b"\n")
        self.raw, self.aad, self.aead = raw, MAGIC + header + b"\n", AESGCM(key)
        self.index = 0
        self.buffer = bytearray()

    def _emit(self, data: bytes, last: bool) -> None:
        flag = b"\x01" if last else b"\x00"
        sealed = self.aead.encrypt(self.prefix + self.index.to_bytes(4, "big") + flag, data,
                                   self.aad)
        self.raw.write(flag + len(sealed).to_bytes(4, "big") + sealed)
        self.index += 1

    def write(self, data: bytes) -> int:
        self.buffer += data
        while len(self.buffer) > SEGMENT:  # keep one back: the last segment is flagged
            self._emit(bytes(self.buffer[:SEGMENT]), False)
            del self.buffer[:SEGMENT]
        return len(data)

    def close(self) -> None:
        self._emit(bytes(self.buffer), True)
        self.buffer.clear()

    def flush(self) -> None:
        self.raw.flush()


def read_header(raw: BinaryIO) -> tuple[dict[str, str], bytes]:
    if raw.read(len(MAGIC)) != MAGIC:
        raise ArchiveError("not a sealed Parley backup", None)
    line = raw.readline(4096)
    try:
        header = json.loads(line)
        bytes.fromhex(header["nonce_prefix"]), bytes.fromhex(header["salt"])
    except (ValueError, KeyError, TypeError):
        raise ArchiveError("the sealed backup's header is damaged", None) from None
    return header, MAGIC + line


class OpeningReader:
    """A read-only file object over a sealed archive (``read_header`` already consumed)."""

    def __init__(self, raw: BinaryIO, header: dict[str, str], aad: bytes, key: bytes) -> None:
        self.raw, self.aad, self.aead = raw, aad, AESGCM(key)
        self.prefix = bytes.fromhex(header["nonce_prefix"])
        self.index = 0
        self.buffer = b""
        self.finished = False

    def _next(self) -> None:
        head = self.raw.read(5)
        if len(head) < 5:
            raise ArchiveError("the backup archive is truncated (its last segment is missing)",
                               None)
        flag, length = head[:1], int.from_bytes(head[1:], "big")
        sealed = self.raw.read(length) if _TAG <= length <= SEGMENT + _TAG else b""
        if len(sealed) != length or not sealed:
            raise ArchiveError("the backup archive is truncated or damaged", None)
        nonce = self.prefix + self.index.to_bytes(4, "big") + flag
        try:
            self.buffer += self.aead.decrypt(nonce, sealed, self.aad)
        except InvalidTag:
            raise ArchiveError("the backup archive cannot be opened: wrong passphrase or key, "
                               "or the archive was altered", None) from None
        self.index += 1
        if flag == b"\x01":
            self.finished = True
            if self.raw.read(1):
                raise ArchiveError("the backup archive has data after its end", None)

    def read(self, n: int = -1) -> bytes:
        while (n < 0 or len(self.buffer) < n) and not self.finished:
            self._next()
        if n < 0:
            n = len(self.buffer)
        out, self.buffer = self.buffer[:n], self.buffer[n:]
        return out
