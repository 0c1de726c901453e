"""``engine.watch``: folders kept in sync with the library.

This package owns the watched folders (remembered per user in ``watched_folders``: path,
collection, include/exclude globs, tags) and keeping them in sync: a catch-up run at
start (the content-hash check skips what did not change, ``prune`` removes what vanished),
then file events from ``watchfiles`` (Rust's ``notify``), debounced and batched, become
one ingestion run of the changed files followed by the removal of the deleted ones. A
renamed or moved file is matched by content hash and keeps its chunks and vectors (the
ingestion links it before the old path is removed). ``watchfiles`` is imported only when
watching starts.
"""

from engine.watch.folders import WatchFolders
from engine.watch.sync import FolderSync

__all__ = ["FolderSync", "WatchFolders"]
