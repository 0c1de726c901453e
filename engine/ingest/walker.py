"""Finding the files an ingestion run reads: targets, recursion, globs, symlinks.

Blocking (the pipeline runs it in a worker thread). Rules:

- A target that is a file is always taken, whatever its type or name (a file named on the
  command line that Parley cannot read is reported, not silently ignored).
- Inside folders: hidden entries (``.git``, ``.cache``, ``.DS_Store``) are skipped unless
  ``hidden``; ``exclude`` globs prune folders and drop files; ``include`` globs, when given,
  keep only the files they match; files that are not documents (``detect_kind`` is None:
  images, binaries) are skipped without a report.
- A glob without ``/`` matches a name at any depth (``*.md``, ``node_modules``); one with
  ``/`` matches the path relative to the target (``docs/**/*.rst``); ``**`` spans folders.
- Symlinks are followed. A link that leads back into one of its own parent folders is
  reported as a loop, a second link to a folder already walked is skipped, and every file
  is returned once, under its resolved path (so two names of one file are one document).
- Problems (missing targets, unreadable folders, broken links, loops, FIFOs and other
  non-regular files) come back as ``(path, reason)`` and the walk goes on.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from engine.ingest.loaders import detect_kind


@dataclass(slots=True)
class Discovery:
    """What a walk found."""

    files: list[Path] = field(default_factory=list)  # resolved, each once, in walk order
    errors: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    roots: list[Path] = field(default_factory=list)  # resolved targets that exist
    missing: list[str] = field(default_factory=list)  # targets that do not exist


@lru_cache(maxsize=256)
def compile_glob(pattern: str) -> re.Pattern[str]:
    """A regular expression for a glob with ``*``, ``?``, ``[...]`` and ``**``."""
    pat = pattern.strip().strip("/")
    out: list[str] = []
    i = 0
    while i < len(pat):
        ch = pat[i]
        if pat.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pat.startswith("**", i):
            out.append(".*")
            i += 2
        elif ch == "*":
            out.append("[^/]*")
            i += 1
        elif ch == "?":
            out.append("[^/]")
            i += 1
        elif ch == "[" and (end := pat.find("]", i + 2)) != -1:
            body = pat[i + 1:end]
            if body.startswith("!"):
                body = "^" + body[1:]
            out.append("[" + body.replace("\\", "\\\\") + "]")
            i = end + 1
        else:
            out.append(re.escape(ch))
            i += 1
    return re.compile("".join(out) + r"\Z", re.DOTALL)


def glob_matches(patterns: Sequence[str], rel_path: str) -> bool:
    """True when one of ``patterns`` matches ``rel_path`` (POSIX, relative to a target)."""
    name = rel_path.rsplit("/", 1)[-1]
    for pattern in patterns:
        anchored = "/" in pattern.strip().rstrip("/")  # "/docs" and "a/b" anchor; "build/" not
        if compile_glob(pattern).match(rel_path if anchored else name):
            return True
    return False


def _reason(exc: OSError, what: str) -> str:
    if exc.errno == errno.ELOOP:
        return "symlink loop (the link points back to itself)"
    if exc.errno in (errno.EACCES, errno.EPERM):
        return f"permission denied (cannot {what})"
    if exc.errno in (errno.ENOENT, errno.ENOTDIR):
        return "path not found"
    return f"cannot {what}: {exc.strerror or exc}"


def _kind_of_mode(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a file or folder"


class _Walk:
    def __init__(self, include: Sequence[str], exclude: Sequence[str], hidden: bool,
                 is_document: Callable[[Path], bool]) -> None:
        self.include, self.exclude, self.hidden = include, exclude, hidden
        self.is_document = is_document
        self.out = Discovery()
        self._seen_files: set[str] = set()
        self._seen_dirs: set[tuple[int, int]] = set()

    def _error(self, path: Path, reason: str) -> None:
        shown = str(path).encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        self.out.errors.append((shown, reason))

    def add_file(self, path: Path) -> None:
        resolved = str(path.resolve())
        try:
            resolved.encode("utf-8")
        except UnicodeEncodeError:  # undecodable bytes in a name cannot be stored as text
            self._error(path, "the file name is not valid UTF-8")
            return
        if resolved not in self._seen_files:
            self._seen_files.add(resolved)
            self.out.files.append(Path(resolved))

    def target(self, raw: str | os.PathLike[str]) -> None:
        path = Path(os.path.abspath(os.path.expanduser(os.fspath(raw))))
        try:
            st = path.stat()
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR) and not path.is_symlink():
                self.out.missing.append(str(path))
            self._error(path, _reason(exc, "read it"))
            return
        self.out.roots.append(path.resolve())
        if stat.S_ISDIR(st.st_mode):
            self.walk(path.resolve(), path.resolve(), ())
        elif stat.S_ISREG(st.st_mode):
            self.add_file(path)
        else:
            self._error(path, f"not a regular file ({_kind_of_mode(st.st_mode)})")

    def walk(self, folder: Path, root: Path, ancestors: tuple[tuple[int, int], ...]) -> None:
        try:
            st = folder.stat()
        except OSError as exc:
            self._error(folder, _reason(exc, "open the folder"))
            return
        key = (st.st_dev, st.st_ino)
        if key in ancestors:
            self._error(folder, "symlink loop (the link points to one of its own "
                                "parent folders)")
            return
        if key in self._seen_dirs:
            return  # another link to a folder already walked
        self._seen_dirs.add(key)
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            self._error(folder, _reason(exc, "list the folder"))
            return
        lineage = (*ancestors, key)
        for entry in entries:
            self.entry(entry, Path(entry.path), root, lineage)

    def entry(self, entry: os.DirEntry[str], path: Path, root: Path,
              lineage: tuple[tuple[int, int], ...]) -> None:
        if not self.hidden and entry.name.startswith("."):
            return
        rel = path.relative_to(root).as_posix()
        if self.exclude and glob_matches(self.exclude, rel):
            return
        try:
            st = entry.stat()  # follows symlinks
        except OSError as exc:
            if entry.is_symlink() and exc.errno == errno.ENOENT:
                self._error(path, "broken symlink (its target does not exist)")
            else:
                self._error(path, _reason(exc, "read it"))
            return
        if stat.S_ISDIR(st.st_mode):
            self.walk(path, root, lineage)
            return
        if self.include and not glob_matches(self.include, rel):
            return
        if not stat.S_ISREG(st.st_mode):
            self._error(path, f"not a regular file ({_kind_of_mode(st.st_mode)})")
            return
        if self.is_document(path):
            self.add_file(path)


def discover(targets: Iterable[str | os.PathLike[str]], *, include: Sequence[str] = (),
             exclude: Sequence[str] = (), hidden: bool = False,
             is_document: Callable[[Path], bool] | None = None) -> Discovery:
    """Every document file under ``targets`` (see the module docstring for the rules)."""
    walk = _Walk(tuple(include), tuple(exclude), hidden,
                 is_document or (lambda p: detect_kind(p) is not None))
    for target in targets:
        walk.target(target)
    return walk.out


def is_gone(path: str) -> bool:
    """True only when ``path`` certainly no longer exists (never for a permission error,
    which a removable drive or a locked folder can cause: pruning must not delete those)."""
    try:
        os.lstat(path)
    except OSError as exc:
        return exc.errno in (errno.ENOENT, errno.ENOTDIR)
    return not os.path.isfile(path)
