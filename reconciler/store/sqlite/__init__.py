"""The embedded store: SQLite (WAL) metadata plus content-addressed files on disk."""

from reconciler.store.sqlite.store import SQLiteStore, temporary_store

__all__ = ["SQLiteStore", "temporary_store"]
