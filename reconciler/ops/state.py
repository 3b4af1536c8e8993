"""``RepoState``: one repository version's content and tags as the operations transform it.

Every content operation (upload, tag, copy, remove, and the plan's composition of several
of them) is a function ``RepoState -> RepoState``; the committing wrappers then hand the
final state to ``Store.version_commit`` once, so one operation makes one version.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from reconciler.model import Digest
from reconciler.model.content import ContentSet, TagEntry
from reconciler.model.repository import ContentSummary, RepositoryVersion


def _frozen_tags(tags: Mapping[str, TagEntry]) -> Mapping[str, TagEntry]:
    return MappingProxyType(dict(sorted(tags.items())))


@dataclass(frozen=True)
class RepoState:
    """Content (blobs, manifests, indexes) plus the tag map ``name -> TagEntry``, and
    ``absent``: index children the repository deliberately does not hold (platforms it
    does not mirror; never anything the content holds)."""

    content: ContentSet = field(default_factory=ContentSet)
    tags: Mapping[str, TagEntry] = field(default_factory=dict)
    absent: frozenset[Digest] = frozenset()

    def __post_init__(self) -> None:
        object.__setattr__(self, "tags", _frozen_tags(self.tags))
        if self.absent:
            held = self.content
            object.__setattr__(self, "absent", frozenset(d for d in self.absent if d not in held))

    @classmethod
    def of(cls, version: RepositoryVersion) -> RepoState:
        return cls(version.content, version.tags, version.absent)

    # -- derived views ---------------------------------------------------------------
    def kind_of(self, digest: Digest) -> str | None:
        """``"blob"``, ``"manifest"``, ``"index"`` or None when not in this state."""
        for kind, digests in (("manifest", self.content.manifests), ("index", self.content.indexes),
                              ("blob", self.content.blobs)):
            if digest in digests:
                return kind
        return None

    def tags_of(self, digests: Iterable[Digest]) -> frozenset[str]:
        """Names of the tags that point at any of ``digests``."""
        wanted = set(digests)
        return frozenset(n for n, e in self.tags.items() if e.digest in wanted)

    # -- transformations (all return new states) -------------------------------------
    def with_content(self, added: ContentSet, absent: Iterable[Digest] = ()) -> RepoState:
        """``added`` held; ``absent``: index children of it left out on purpose."""
        return RepoState(self.content.union(added), self.tags, self.absent.union(absent))

    def without_content(self, removed: ContentSet) -> RepoState:
        return RepoState(self.content.difference(removed), self.tags, self.absent)

    def with_tags(self, tags: Mapping[str, TagEntry]) -> RepoState:
        """Create or move the given tags (one tag per name: a same-name tag is replaced)."""
        return RepoState(self.content, {**self.tags, **tags}, self.absent)

    def without_tags(self, names: Iterable[str]) -> RepoState:
        drop = set(names)
        return RepoState(self.content, {n: e for n, e in self.tags.items() if n not in drop}, self.absent)

    def summary_against(self, before: RepoState) -> ContentSummary:
        """What going from ``before`` to this state adds and removes, per kind
        (the same shape the store records for a version)."""
        added = self.content.difference(before.content)
        removed = before.content.difference(self.content)
        tags_added = sum(1 for n, e in self.tags.items() if before.tags.get(n) != e)
        tags_removed = sum(1 for n, e in before.tags.items() if self.tags.get(n) != e)
        return ContentSummary(added={**added.counts(), "tags": tags_added},
                              removed={**removed.counts(), "tags": tags_removed})
