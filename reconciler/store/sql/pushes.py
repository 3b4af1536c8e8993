"""``Store.pushed`` / ``push_record`` of ``SQLStore`` (mixed in): the ``push_records``
table (migration 0010), one row per (registry, name, tag)."""

from __future__ import annotations

from contextlib import AbstractContextManager
from datetime import UTC, datetime

from reconciler.model import Digest
from reconciler.store.roles.pushes import PushRecord
from reconciler.store.sql.connection import Connection


class PushRecordsSQL:
    def _write(self) -> AbstractContextManager[Connection]:  # provided by SQLStore
        raise NotImplementedError

    def _conn(self) -> Connection:  # provided by SQLStore
        raise NotImplementedError

    def pushed(self, registry: str, name: str | None = None) -> list[PushRecord]:
        sql = "SELECT registry, name, tag, digest, pushed FROM push_records WHERE registry = ?"
        args: tuple[str, ...] = (registry,)
        if name is not None:
            sql, args = sql + " AND name = ?", (registry, name)
        rows = self._conn().execute(sql + " ORDER BY name, tag", args).fetchall()
        return [PushRecord(r[0], r[1], r[2], Digest.parse(r[3]), r[4]) for r in rows]

    def push_record(self, registry: str, name: str, tag: str, digest: Digest | None) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM push_records WHERE registry = ? AND name = ? AND tag = ?", (registry, name, tag))
            if digest is not None:
                conn.execute("INSERT INTO push_records (registry, name, tag, digest, pushed) VALUES (?, ?, ?, ?, ?)",
                             (registry, name, tag, str(digest), datetime.now(UTC).isoformat(timespec="seconds")))
