"""Several publications switched in one transaction (``Store.publications_switch``).

A publish name moving between repositories (a renamed repository key, a name given to
another repository, two names swapped) must never be unserved or served by the wrong
repository, and the names are UNIQUE in the table. So, inside one write transaction:
every repository named is checked, a claimed name held by a repository outside the
switch is refused, the versions the moved names leave are recorded for the grace period,
then every name is released, then every claim is made. A reader sees every publication
as it was or every one as it is now.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractContextManager

from reconciler.errors import Conflict, NotFound, RepositoryNotFound, StoreError
from reconciler.model import validate_repository_name
from reconciler.model.repository import PublicationChange
from reconciler.store.sql import grace
from reconciler.store.sql.connection import Connection


def check(changes: Sequence[PublicationChange]) -> None:
    """What is refused before anything is read: a repository named twice, a name given
    twice, a name that breaks Docker's rules."""
    if len({c.repo_id for c in changes}) != len(changes):
        raise StoreError("a publication switch names a repository twice")
    claimed = [c.name for c in changes if c.name is not None]
    if len(set(claimed)) != len(claimed):
        raise Conflict(f"a publication switch gives one publish name to two repositories: {sorted(claimed)}")
    for name in claimed:
        validate_repository_name(name, what="publish name")


def switch(conn: Connection, changes: Sequence[PublicationChange], location: str) -> None:
    """The switch, inside the caller's write transaction (see the module docstring)."""
    check(changes)
    by_repo = {c.repo_id: c for c in changes}
    claimed = [c.name for c in changes if c.name is not None]
    for c in changes:
        row = conn.execute("SELECT latest_version FROM repositories WHERE id = ?", (c.repo_id,)).fetchone()
        if row is None:
            raise RepositoryNotFound(f"no repository {c.repo_id!r} in the store at {location}")
        if c.version is not None and not 0 <= c.version <= row[0]:
            raise NotFound(f"repository {c.repo_id!r} has no version {c.version} (latest is {row[0]})")
    for name in claimed:
        holder = conn.execute("SELECT id FROM repositories WHERE publish_name = ?", (name,)).fetchone()
        if holder and holder[0] not in by_repo:
            raise Conflict(f"publish name {name!r} is already used by repository {holder[0]!r}",
                           hint=f"release it first: reconciler unpublish {holder[0]} --release")
    # the versions the moved names leave keep serving by digest for the grace period (a
    # name only given up, not taken by another repository, ends at once: as unpublish)
    for c in changes:
        old = conn.execute("SELECT publish_name, published_version FROM repositories WHERE id = ?",
                           (c.repo_id,)).fetchone()
        if c.name is not None or old[0] in claimed:
            grace.record_move(conn, c.repo_id, old[0], old[1], c.name, c.version)
    # releases first (the names are UNIQUE), then the claims
    for c in changes:
        conn.execute("UPDATE repositories SET publish_name = NULL, published_version = NULL WHERE id = ?",
                     (c.repo_id,))
    for c in changes:
        if c.name is not None:
            conn.execute("UPDATE repositories SET publish_name = ?, published_version = ?, protected = ? "
                         "WHERE id = ?", (c.name, c.version, int(c.protected), c.repo_id))


class PublicationSwitch:
    """``Store.publications_switch`` of ``SQLStore`` (mixed in; relies on its transactions)."""

    location: str

    def _write(self) -> AbstractContextManager[Connection]:  # provided by SQLStore
        raise NotImplementedError

    def publications_switch(self, changes: Sequence[PublicationChange]) -> None:
        with self._write() as conn:
            switch(conn, changes, self.location)
