"""Wiring: the one place where adapters (store backends, registry client, server) are
chosen and put together. The CLI and tests call these functions."""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from reconciler.errors import StoreError
from reconciler.store.protocol import Store

if TYPE_CHECKING:
    from reconciler.server import RegistryApp

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


def make_server_app(location: str | None = None, *, htpasswd: str | None = None) -> RegistryApp:
    """The registry WSGI app over the store at ``location``; the store itself is opened
    on the first request (in each worker process after the fork)."""
    from reconciler.server import RegistryApp
    from reconciler.server.auth import Htpasswd

    loc = store_location(location)
    users = Htpasswd(htpasswd) if htpasswd else None
    return RegistryApp(lambda: open_store(loc), htpasswd=users)


def serve(location: str | None = None, *, host: str = "127.0.0.1", port: int = 5000, workers: int = 2,
          threads: int = 4, htpasswd: str | None = None) -> None:
    """Run the registry server under gunicorn until SIGTERM/SIGINT."""
    from reconciler.server.auth import Htpasswd
    from reconciler.server.gunicorn_app import GunicornServer, setup_access_log

    loc = store_location(location)
    # fail before forking: a bad store path or htpasswd file is an error now, not per request
    open_store(loc).close()
    if htpasswd:
        Htpasswd(htpasswd)
    setup_access_log()
    GunicornServer(lambda: make_server_app(loc, htpasswd=htpasswd), host=host, port=port,
                   workers=workers, threads=threads).run()
