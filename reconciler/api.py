"""Wiring: the one place where adapters (store backends, registry client, server) are
chosen and put together. The CLI and tests call these functions."""

from __future__ import annotations

import os

from reconciler.errors import StoreError
from reconciler.store.protocol import Store

DEFAULT_STORE = "./.reconciler"
STORE_ENV = "RECONCILER_STORE"


def store_location(explicit: str | None = None) -> str:
    """``--store`` wins, then ``$RECONCILER_STORE``, then ``./.reconciler``."""
    return explicit or os.environ.get(STORE_ENV) or DEFAULT_STORE


def open_store(location: str | None = None) -> Store:
    """Open (creating if needed) the store at ``location``: a directory path for the
    embedded SQLite store."""
    loc = store_location(location)
    if loc.startswith(("postgresql://", "postgres://")):
        raise StoreError(f"the PostgreSQL store backend is not available yet ({loc.split('@')[-1]})",
                         hint="use a directory path for the embedded store")
    if "://" in loc:
        raise StoreError(f"unsupported store location {loc!r}",
                         hint="give a directory path, e.g. --store ./.reconciler")
    from reconciler.store.sqlite import SQLiteStore

    return SQLiteStore(loc)
