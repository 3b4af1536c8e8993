"""The store's maintenance role: ``store check``, ``store gc`` and ``store du``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from reconciler.model.reports import CheckReport, GcReport, StoreUsage


class Maintenance(Protocol):
    def check(self, *, verify_content: bool = True) -> CheckReport: ...
    def gc(self, *, dry_run: bool = False, lock_timeout: float = 60.0,
           events: Callable[[str], None] | None = None) -> GcReport:
        """Under the store lock (waiting up to ``lock_timeout`` unless this thread holds
        it): remove content no existing version holds and dead writers' temporary files;
        ``dry_run`` only counts them (and writes nothing). ``events``: told each step
        (crash points for tests)."""
        ...
    def usage(self) -> StoreUsage:
        """Where the bytes are (``store du``)."""
        ...
