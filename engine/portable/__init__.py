"""Moving and keeping a Parley database: ``db copy``, ``backup``, ``restore`` and ``db check``.

This package owns the portable copy between any two Parley databases (SQLite and
PostgreSQL, either direction), driven by the SQLAlchemy metadata so a table added later
copies without code changes: encrypted columns travel as their raw Fernet tokens (nothing
is decrypted, no key is needed), vectors as float32, ids are kept into an empty target and
shifted by a per-table offset into one that already holds rows (every foreign key
following), and progress is recorded on the target (``parley_copy_state``) so a killed
copy resumes. It also owns the backup archive (a consistent SQLite snapshot plus a
manifest, optionally sealed with AES-GCM in streamed segments), restoring one through the
same copy path, the verification pass both share, and the database integrity check.
"""
