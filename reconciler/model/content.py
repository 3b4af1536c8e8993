"""What a repository version holds, as plain values: the kinds of content, tags and
where they came from, the content set of a version, the references the store recorded for
a manifest, and the Docker v1 side of a version.

The store returns these and the plan, the operations and the server read them; nothing
here does I/O (the store protocol, ``reconciler.store.protocol``, says who produces them).
"""

from __future__ import annotations

import enum
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from reconciler.model.digest import Digest


class Origin(str, enum.Enum):
    """Where a tag came from; pruning and mirror decisions depend on it."""

    SYNC = "sync"
    COPY = "copy"
    UPLOAD = "upload"
    PIN = "pin"
    MANUAL = "manual"


class Kind(str, enum.Enum):
    """The three kinds of content a repository version holds."""

    BLOB = "blob"
    MANIFEST = "manifest"
    INDEX = "index"


@dataclass(frozen=True)
class TagEntry:
    digest: Digest
    origin: Origin = Origin.MANUAL


@dataclass(frozen=True)
class ContentSet:
    """Digests held by one repository version, by kind."""

    blobs: frozenset[Digest] = frozenset()
    manifests: frozenset[Digest] = frozenset()
    indexes: frozenset[Digest] = frozenset()

    def of(self, kind: Kind) -> frozenset[Digest]:
        return {Kind.BLOB: self.blobs, Kind.MANIFEST: self.manifests, Kind.INDEX: self.indexes}[kind]

    def items(self) -> Iterator[tuple[Digest, Kind]]:
        for kind in Kind:
            for d in self.of(kind):
                yield d, kind

    def __contains__(self, digest: object) -> bool:
        return digest in self.blobs or digest in self.manifests or digest in self.indexes

    def __len__(self) -> int:
        return len(self.blobs) + len(self.manifests) + len(self.indexes)

    def union(self, other: ContentSet) -> ContentSet:
        return ContentSet(self.blobs | other.blobs, self.manifests | other.manifests, self.indexes | other.indexes)

    def difference(self, other: ContentSet) -> ContentSet:
        return ContentSet(self.blobs - other.blobs, self.manifests - other.manifests, self.indexes - other.indexes)

    def counts(self) -> dict[str, int]:
        return {"blobs": len(self.blobs), "manifests": len(self.manifests), "indexes": len(self.indexes)}


@dataclass(frozen=True)
class V1Content:
    """The Docker v1 side of one repository version (docs/original-system.md, "v1 images
    and tags").

    ``images`` are v1 image ids; ``tags`` map a v1 tag name to an image id (one image
    per name: re-tagging replaces). ``masked`` are ids deliberately left out by an
    upload's ``--mask-id``: an image's parent must be in ``images`` or in ``masked``.
    v1 content and OCI content share the version numbers: a change to either makes the
    next version, which carries the other side over unchanged."""

    images: frozenset[str] = frozenset()
    tags: Mapping[str, str] = field(default_factory=dict)
    masked: frozenset[str] = frozenset()

    @property
    def empty(self) -> bool:
        return not self.images and not self.tags and not self.masked


@dataclass(frozen=True)
class ManifestRefs:
    """What one stored manifest or index references, as the store recorded it when the
    manifest was stored (so a caller needs no manifest file read or parsed).

    ``children`` are in document order, de-duplicated: an image manifest's blobs (config
    first; foreign layers are not stored, so not listed) or an index's entries.
    ``child_kinds`` is parallel to ``children`` for an index (``MANIFEST`` or ``INDEX``,
    from the entry's media type) and empty for an image manifest (all blobs)."""

    kind: Kind
    children: tuple[Digest, ...] = ()
    child_kinds: tuple[Kind, ...] = ()
