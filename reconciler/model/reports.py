"""What the store's maintenance and journal report, as plain values: ``store check``
findings, what ``store gc`` removed, where the bytes are (``store du``), and journal
entries. The store produces them (``reconciler.store.protocol``); nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One finding of ``store check``."""

    kind: str  # "missing", "corrupt", "dangling", ...
    subject: str  # a digest or "repo@version"
    message: str

    def to_json(self) -> dict[str, str]:
        return {"kind": self.kind, "subject": self.subject, "message": self.message}


@dataclass(frozen=True)
class CheckReport:
    problems: tuple[Problem, ...]
    blobs_checked: int
    manifests_checked: int
    versions_checked: int

    @property
    def ok(self) -> bool:
        return not self.problems


@dataclass(frozen=True)
class GcReport:
    """What ``store gc`` removed (or, with ``dry_run``, would remove)."""

    blobs_removed: int
    manifests_removed: int
    bytes_freed: int
    temp_files_removed: int
    dry_run: bool = False

    def to_json(self) -> dict[str, object]:
        return {"freed_bytes": self.bytes_freed, "blobs_removed": self.blobs_removed,
                "manifests_removed": self.manifests_removed, "temporary_files_removed": self.temp_files_removed,
                "dry_run": self.dry_run}


@dataclass(frozen=True)
class RepositoryUsage:
    """One repository's line of ``store du`` (bytes are blob and manifest bytes)."""

    id: str
    versions: int
    #: held by its latest version
    bytes: int
    #: held by this repository (any version) and by no other: what deleting it frees
    unique_bytes: int
    #: held only by its versions retention may drop (not latest, not published, ...), and
    #: by no other repository: what dropping them all and gc would free
    old_versions_bytes: int

    def to_json(self) -> dict[str, object]:
        return {"id": self.id, "versions": self.versions, "bytes": self.bytes, "unique_bytes": self.unique_bytes,
                "old_versions_bytes": self.old_versions_bytes}


@dataclass(frozen=True)
class StoreUsage:
    """``store du``: where the store's bytes are."""

    #: every recorded blob and manifest
    total_bytes: int
    #: recorded content no version holds: what ``store gc`` frees
    unreferenced_bytes: int
    repositories: tuple[RepositoryUsage, ...] = ()

    def to_json(self) -> dict[str, object]:
        return {"total_bytes": self.total_bytes, "unreferenced_bytes": self.unreferenced_bytes,
                "repositories": [r.to_json() for r in self.repositories]}


@dataclass(frozen=True)
class JournalEntry:
    id: int
    started: str
    finished: str | None
    user: str
    host: str
    command: str
    plan_digest: str | None
    result: str
    details: Mapping[str, object]
