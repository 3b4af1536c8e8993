"""The grace period of a publication that moved: its old versions stay served by digest.

A client pulls in steps: the manifest of ``latest``, then its layers, one request each.
If a publish moves ``latest`` in between, the new version may lack a layer the client
is about to ask for; serving only the published version would answer ``BLOB_UNKNOWN``
mid-pull. So when a publication moves (``publish`` to another version, a rollback, or a
name that now points elsewhere), the store records the version it left, with the moment
until which that name keeps serving its content by digest (``serve_until``). Tags always
resolve in the published version; ``unpublish`` ends serving at once, without grace.

The length is ``RECONCILER_PUBLISH_GRACE`` seconds (default 300) of the process that
moves the publication, recorded in the row, so the server, retention and gc read one
answer from the store instead of three settings that could disagree.

The versions in a grace period are protected from dropping: ``lifecycle.PROTECTED_VERSIONS``
(the store's one definition, which ``versions_pinned`` reads too) includes them.
"""

from __future__ import annotations

import os
import time

from reconciler.errors import InvalidInput
from reconciler.store.sql.connection import Connection

GRACE_ENV = "RECONCILER_PUBLISH_GRACE"
DEFAULT_GRACE = 300.0


def grace_seconds() -> float:
    """The grace period a publication move records now (``RECONCILER_PUBLISH_GRACE``)."""
    value = os.environ.get(GRACE_ENV)
    if not value:
        return DEFAULT_GRACE
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1.0
    if not seconds >= 0:  # also refuses NaN
        raise InvalidInput(f"{GRACE_ENV}={value!r} is not a number of seconds",
                           hint=f"e.g. {GRACE_ENV}=300 (0: no grace period)")
    return seconds


def record_move(conn: Connection, repo_id: str, old_name: str | None, old_version: int | None,
                new_name: str | None, new_version: int | None) -> None:
    """Inside the transaction that moves ``repo_id``'s publication: remember the version
    it leaves (if any, and if it really moves), and forget moves whose grace has ended."""
    now = time.time()
    conn.execute("DELETE FROM publication_history WHERE serve_until < ?", (now,))
    if old_name is None or old_version is None or (old_name, old_version) == (new_name, new_version):
        return
    grace = grace_seconds()
    if grace > 0:
        conn.execute("INSERT INTO publication_history (name, repo_id, version, ended, serve_until) "
                     "VALUES (?, ?, ?, ?, ?)", (old_name, repo_id, old_version, now, now + grace))


def grace_versions(conn: Connection, name: str) -> list[tuple[str, int]]:
    """(repository, version) that ``name`` pointed at before and still serves by digest,
    the most recently left first."""
    rows = conn.execute("SELECT repo_id, version FROM publication_history WHERE name = ? AND serve_until > ? "
                        "ORDER BY ended DESC", (name, time.time()))
    return [(r[0], int(r[1])) for r in rows]
