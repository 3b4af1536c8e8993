"""The embedded store: SQLite (WAL) metadata plus content-addressed files on disk."""

from reconciler.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]
