"""The version-lifecycle methods of the SQL stores (``SQLStore`` mixes them in): the
protected versions, what retention needs, dropping versions, ``store du`` and pruning the
journal. The rules and queries are in ``lifecycle.py`` and ``usage.py``."""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import AbstractContextManager

from reconciler.model.reports import StoreUsage
from reconciler.model.repository import Repository, VersionHistory
from reconciler.store.sql import lifecycle
from reconciler.store.sql.connection import Connection
from reconciler.store.sql.usage import usage


class VersionLifecycle:
    """The lifecycle methods of ``SQLStore`` (mixed in; relies on its connections,
    transactions and ``repository_get``)."""

    def _conn(self) -> Connection:  # provided by SQLStore
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[Connection]:  # provided by SQLStore
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[Connection]:  # provided by SQLStore
        raise NotImplementedError

    def repository_get(self, repo_id: str) -> Repository:  # provided by SQLStore
        raise NotImplementedError

    def protected_versions(self) -> dict[str, dict[int, tuple[str, ...]]]:
        return lifecycle.protected_versions(self._conn())

    def versions_pinned(self) -> dict[str, set[int]]:
        """Per repository, the published version and those in a grace period: the
        protected versions but for the latest (what the server may still be serving)."""
        pinned: dict[str, set[int]] = {}
        for repo_id, versions in lifecycle.protected_versions(self._conn()).items():
            numbers = {n for n, why in versions.items() if set(why) - {"latest"}}
            if numbers:
                pinned[repo_id] = numbers
        return pinned

    def version_history(self, repo_ids: Iterable[str]) -> dict[str, VersionHistory]:
        with self._read() as conn:
            return lifecycle.version_history(conn, repo_ids)

    def versions_drop(self, repo_id: str, numbers: Iterable[int]) -> list[int]:
        numbers = list(numbers)
        self.repository_get(repo_id)
        if not numbers:
            return []
        with self._write() as conn:
            return lifecycle.drop_versions(conn, repo_id, numbers)

    def usage(self) -> StoreUsage:
        with self._read() as conn:
            return usage(conn)

    def journal_prune(self, before: str) -> int:
        """Finished journal entries started before ``before`` go (``history --prune-before``)."""
        with self._write() as conn:
            n = conn.execute("SELECT COUNT(*) FROM journal WHERE started < ? AND result != 'running'",
                             (before,)).fetchone()[0]
            conn.execute("DELETE FROM journal WHERE started < ? AND result != 'running'", (before,))
        return int(n)
