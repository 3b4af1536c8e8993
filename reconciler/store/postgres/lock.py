"""The store's exclusive apply lock: a PostgreSQL session advisory lock.

Each ``lock()`` holds its own connection, so it excludes other processes, other
machines sharing the database and other threads alike; the server releases it when
that connection ends, so a killed apply never leaves a stale lock. The connection's
``application_name`` says who holds it (pid, host, command): a waiter that times out
reads it from ``pg_stat_activity`` and names the holder.

A lock can be lost while held: when its connection ends (a database restart, a network
cut, an administrator's ``pg_terminate_backend``), the server releases it and another
apply may take it. So the store checks, inside every write transaction of a process
holding the lock, that the lock's session still holds it (``held_by``), and refuses the
write otherwise: an apply that lost its lock stops at its next write instead of
interleaving with the next holder. A watchdog thread also pings the lock's session every
``WATCH_INTERVAL`` seconds and reports a loss at once (``on_lost``), so an apply that is
downloading, not writing, stops within that time instead of at its next write.
"""

from __future__ import annotations

import logging
import os
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from reconciler.errors import LockTimeout
from reconciler.store.postgres.connection import store_error

log = logging.getLogger(__name__)

#: pg_advisory_lock key of the apply lock (advisory locks are per database, so two
#: stores on one server do not share it). Under 2**31: pg_locks shows it as objid.
APPLY_LOCK_KEY = 0x5245434C  # "RECL"
#: seconds between two pings of the lock's session by its watchdog
WATCH_INTERVAL = 1.0


def holder_name() -> str:
    """What this process calls itself in ``pg_stat_activity`` (at most 63 bytes): pid,
    host and the command's words. Options and anything URL- or path-like are left out:
    every user of the database can read this, and ``--store`` may carry a password."""
    words = [w for w in sys.argv[1:] if not w.startswith("-") and not any(c in w for c in ":/@=")][:2]
    name = f"reconciler pid {os.getpid()}@{socket.gethostname()}" + (f": {' '.join(words)}" if words else "")
    return name.encode()[:63].decode(errors="ignore")


#: inside a write transaction: does one of these backend pids hold the apply lock?
HELD_BY = ("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1 "
           "AND classid = 0 AND objid::bigint = ? AND pid = ANY(?) "
           "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())")


@contextmanager
def advisory_lock(conninfo: str, where: str, timeout: float,
                  on_lost: Callable[[], None] | None = None) -> Iterator[int]:
    """Hold the apply lock; yields the backend pid of the session that holds it.
    ``on_lost`` is called (from the watchdog thread) when that session ends while held."""
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
        stop = threading.Event()
        watchdog = threading.Thread(target=_watch, args=(conn, stop, on_lost), name="apply-lock-watchdog",
                                    daemon=True)
        watchdog.start()
        try:
            yield conn.info.backend_pid
        finally:
            stop.set()
            watchdog.join()
            try:
                conn.execute("SELECT pg_advisory_unlock(%s)", (APPLY_LOCK_KEY,))
            except psycopg.OperationalError as exc:
                # the session ended, and the server released the lock with it; the writes
                # made meanwhile were refused (see the module doc), so nothing to undo
                log.warning("the apply lock on %s was lost before its release: %s", where, str(exc).strip())
    except psycopg.Error as exc:
        raise store_error(exc, where) from exc
    finally:
        conn.close()


def _watch(conn: psycopg.Connection[tuple[object, ...]], stop: threading.Event,
           on_lost: Callable[[], None] | None) -> None:
    """Ping the lock's session until ``stop``; on failure report the loss once and end."""
    while not stop.wait(WATCH_INTERVAL):
        try:
            conn.execute("SELECT 1")
        except psycopg.Error as exc:
            log.error("the apply lock's connection ended (%s): the lock is lost", str(exc).strip())
            if on_lost is not None:
                on_lost()
            return


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


#: the lock between backups (shared) and gc (exclusive): see ``backup_lock``
BACKUP_LOCK_KEY = 0x5245424B  # "REBK"


@contextmanager
def backup_lock(conninfo: str, where: str, *, shared: bool, timeout: float) -> Iterator[None]:
    """Backups hold it shared, gc exclusively, on a session of their own, so that gc never
    deletes bytes a running backup's snapshot still names (applies are not affected)."""
    try:
        conn = psycopg.connect(conninfo, autocommit=True, application_name=holder_name())
    except psycopg.Error as exc:
        raise store_error(exc, where) from exc
    try:
        take = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        deadline = time.monotonic() + max(timeout, 0.0)
        while not conn.execute(f"SELECT {take}(%s)", (BACKUP_LOCK_KEY,)).fetchone()[0]:  # type: ignore[index]
            if time.monotonic() >= deadline:
                raise LockTimeout(
                    f"the store at {where} is busy: " + ("store gc is running" if shared else
                                                         "a backup of it is running") + f" (waited {timeout:g} s)",
                    hint="wait for it to finish, or raise --lock-timeout")
            time.sleep(0.05)
        yield  # the session ends below, which releases the lock
    except psycopg.Error as exc:
        raise store_error(exc, where) from exc
    finally:
        conn.close()
