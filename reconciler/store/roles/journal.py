"""The store's journal role: one entry per apply and per one-off command that writes, with
what it did; ``reconciler history`` and ``drift`` read it back."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from reconciler.model.reports import JournalEntry


class Journal(Protocol):
    def journal_start(self, *, command: str, plan_digest: str | None, details: Mapping[str, object]) -> int: ...
    def journal_finish(self, entry_id: int, *, result: str, details: Mapping[str, object]) -> None: ...
    def journal_list(self, limit: int = 50) -> list[JournalEntry]: ...
    def journal_prune(self, before: str) -> int:
        """Delete finished journal entries started before ``before`` (an ISO 8601 UTC
        timestamp); entries still running stay. Returns how many went."""
        ...
