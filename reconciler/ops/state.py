"""``RepoState``: the state of one repository version as operations transform it.

Operations are written as functions ``RepoState -> RepoState``; the caller commits the
final state with ``store.version_commit`` (which works out the difference and makes one
new version, or none when nothing changed).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.store.protocol import ContentSet, RepositoryVersion, TagEntry


@dataclass(frozen=True)
class RepoState:
    """Content plus tag map of one repository version (a pure value)."""

    content: ContentSet = field(default_factory=ContentSet)
    tags: Mapping[str, TagEntry] = field(default_factory=dict)

    @classmethod
    def of(cls, version: RepositoryVersion) -> RepoState:
        return cls(version.content, dict(version.tags))
