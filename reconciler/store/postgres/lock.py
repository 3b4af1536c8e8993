"""The store's exclusive apply lock: a PostgreSQL session advisory lock.

Each ``lock()`` holds its own connection, so it excludes other processes, other
machines sharing the database and other threads alike; the server releases it when
that connection ends, so a killed apply never leaves a stale lock. The connection's
``application_name`` says who holds it (pid, host, command): a waiter that times out
reads it from ``pg_stat_activity`` and names the holder.
"""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from reconciler.errors import LockTimeout
from reconciler.store.postgres.connection import store_error

#: pg_advisory_lock key of the apply lock (advisory locks are per database, so two
#: stores on one server do not share it). Under 2**31: pg_locks shows it as objid.
APPLY_LOCK_KEY = 0x5245434C  # "RECL"


def holder_name() -> str:
    """What this process calls itself in ``pg_stat_activity`` (at most 63 bytes): pid,
    host and the command's words. Options and anything URL- or path-like are left out:
    every user of the database can read this, and ``--store`` may carry a password."""
    words = [w for w in sys.argv[1:] if not w.startswith("-") and not any(c in w for c in ":/@=")][:2]
    name = f"reconciler pid {os.getpid()}@{socket.gethostname()}" + (f": {' '.join(words)}" if words else "")
    return name.encode()[:63].decode(errors="ignore")


@contextmanager
def advisory_lock(conninfo: str, where: str, timeout: float) -> Iterator[None]:
    try:
        conn = psycopg.connect(conninfo, autocommit=True, application_name=holder_name())
    except psycopg.Error as exc:
        raise store_error(exc, where) from exc
    try:
        deadline = time.monotonic() + max(timeout, 0.0)
        while not conn.execute("SELECT pg_try_advisory_lock(%s)", (APPLY_LOCK_KEY,)).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"the store at {where} is locked by another process{_holder(conn)} (waited {timeout:g} s)",
                    hint="wait for the other apply to finish, or raise --lock-timeout",
                )
            time.sleep(0.05)
        try:
            yield
        finally:
            conn.execute("SELECT pg_advisory_unlock(%s)", (APPLY_LOCK_KEY,))
    except psycopg.Error as exc:
        raise store_error(exc, where) from exc
    finally:
        conn.close()


def _holder(conn: psycopg.Connection[tuple[object, ...]]) -> str:
    row = conn.execute(
        "SELECT a.application_name, a.client_addr, a.pid FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid "
        "WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND l.classid = 0 "
        "AND l.objid::bigint = %s AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        (APPLY_LOCK_KEY,)).fetchone()
    if row is None:
        return ""
    name, addr, pid = row
    return f" ({name or 'unnamed client'}, server pid {pid}{f' from {addr}' if addr else ''})"
