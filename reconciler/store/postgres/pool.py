"""A bounded pool of PostgreSQL connections for one process (``psycopg_pool``).

A connection is lent for one statement, or for one ``_read``/``_write`` transaction,
and given back at once: threads that download or wait on a client hold none. So a
process never has more than ``max_size`` connections open (plus the apply lock's own
session), whatever number of threads it runs: an apply of 40 repositories with their
download threads needs no more than a server replica does. Before this, every thread
kept a connection until the process exited (6 per changed repository in an apply).

A connection the server dropped (a restart, a failover, an idle timeout of a proxy) is
noticed when it fails: it is given back closed, which makes the pool discard it, and the
other idle ones are checked too, so the next lease gets a live one (``PgConnection`` sends
a failed read once more; a write is never sent twice).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from reconciler.errors import StoreError
from reconciler.store.postgres.connection import PgConnection

log = logging.getLogger(__name__)

#: connections of a command (apply, sync, gc ...): statements are short and leased one at a
#: time, so this serves any --jobs; see docs/deployment.md "Connections"
COMMAND_CONNECTIONS = 8
#: how long a statement waits for a free connection (or for the server to accept one)
COMMAND_WAIT = 30.0


class Pool:
    """``max_size`` connections to ``url`` at most; ``lease()`` lends one."""

    def __init__(self, url: str, where: str, *, max_size: int = COMMAND_CONNECTIONS,
                 wait: float = COMMAND_WAIT) -> None:
        self.where = where
        self.max_size = max(1, max_size)
        self.wait = wait
        self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
            url, min_size=0, max_size=self.max_size, open=False, timeout=wait, name="reconciler",
            kwargs={"autocommit": True, "application_name": "reconciler"},
            # an idle connection is closed after a minute: a replica's pool shrinks back
            # after a burst, and applies between bursts hold nothing
            max_idle=60.0, reconnect_timeout=wait)
        self._pool.open(wait=False)

    def _get(self) -> psycopg.Connection[Any]:
        try:
            return self._pool.getconn()
        except PoolTimeout as exc:
            raise StoreError(
                f"no connection to the PostgreSQL store {self.where} within {self.wait:g} s "
                f"(this process's pool of {self.max_size} was busy, or the server refused new connections)",
                hint="check that the server runs and that max_connections leaves room for every replica and "
                     "apply (docs/deployment.md, Connections), then run the command again") from exc

    def _put(self, raw: psycopg.Connection[Any]) -> None:
        broken = raw.closed
        self._pool.putconn(raw)  # a closed one is discarded, an open one rolled back if needed
        if broken:
            # the server dropped this one: the other idle connections likely went with it
            self._pool.check()

    def _replace(self, old: psycopg.Connection[Any]) -> psycopg.Connection[Any]:
        """A live connection for one whose server went away (``PgConnection`` resends a read on it)."""
        self._put(old)
        return self._get()

    @contextmanager
    def lease(self) -> Iterator[PgConnection]:
        """A connection for the ``with`` block, given back after it."""
        conn = PgConnection(self._get(), self.where, reconnect=self._replace)
        try:
            yield conn
        finally:
            self._put(conn.raw)

    def connect_error(self) -> str | None:
        """None when a connection can be had now (within a second); else why not (for ``/readyz``)."""
        try:
            with self._pool.connection(timeout=1.0) as raw:
                raw.execute("SELECT 1")
        except (PoolTimeout, psycopg.Error) as exc:
            return str(exc).strip() or type(exc).__name__
        return None

    def close(self) -> None:
        self._pool.close()
