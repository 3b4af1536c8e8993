"""What tests that look inside the ``store`` fixture (tests/conftest.py) may rely on: both
backends are an ``SQLStore`` (the shared SQL, ``blob_files``), and with local blobs both keep
their files, the blob area's ``tmp`` included, under a local folder, ``root``."""

from __future__ import annotations

from pathlib import Path

from reconciler.store.protocol import Store
from reconciler.store.sql.base import SQLStore
from tests.support.narrow import narrow


def sql_backend(store: Store) -> SQLStore:
    return narrow(SQLStore, store)


def local_root(store: Store) -> Path:
    """The local folder of a store with local blobs (``root`` on either backend)."""
    root = getattr(store, "root", None)
    assert isinstance(root, Path), f"{type(store).__name__} keeps no local files"
    return root
