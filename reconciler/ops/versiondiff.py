"""``reconciler repo diff``: what changed between two versions of a repository, tag by
tag (added, removed, moved with the old and the new digest) and in content counts.

Pure over two ``RepositoryVersion`` values; the versions need not be adjacent (``repo
history`` shows what each version changed against the one before it).
"""

from __future__ import annotations

from dataclasses import dataclass

from reconciler.model import Digest
from reconciler.model.repository import RepositoryVersion


@dataclass(frozen=True)
class TagChange:
    name: str
    #: None: the tag is new in the second version
    old: Digest | None
    #: None: the tag is gone in the second version
    new: Digest | None

    @property
    def change(self) -> str:
        return "added" if self.old is None else ("removed" if self.new is None else "moved")

    def to_json(self) -> dict[str, object]:
        return {"tag": self.name, "change": self.change, "old": str(self.old) if self.old else None,
                "new": str(self.new) if self.new else None}


@dataclass(frozen=True)
class VersionDiff:
    repo_id: str
    old: int
    new: int
    tags: tuple[TagChange, ...]
    #: per kind (blobs, manifests, indexes): how many the second version holds that the first does not
    added: dict[str, int]
    #: per kind: how many the first version holds that the second does not
    removed: dict[str, int]

    @property
    def empty(self) -> bool:
        return not self.tags and not any(self.added.values()) and not any(self.removed.values())

    def to_json(self) -> dict[str, object]:
        return {"repository": self.repo_id, "from": self.old, "to": self.new,
                "tags": [t.to_json() for t in self.tags], "added": self.added, "removed": self.removed}


def diff_versions(a: RepositoryVersion, b: RepositoryVersion) -> VersionDiff:
    """From ``a`` to ``b`` (two versions of one repository), tags sorted by name. A tag
    that only changed origin (e.g. synced, then pinned to the same digest) is no change."""
    names = sorted(set(a.tags) | set(b.tags))
    changes = []
    for name in names:
        old, new = a.tags.get(name), b.tags.get(name)
        old_d, new_d = (old.digest if old else None), (new.digest if new else None)
        if old_d != new_d:
            changes.append(TagChange(name, old_d, new_d))
    return VersionDiff(a.repo_id, a.number, b.number, tuple(changes),
                       b.content.difference(a.content).counts(), a.content.difference(b.content).counts())
