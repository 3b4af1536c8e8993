"""Repositories, their versions and publications, as plain values.

A repository is a sequence of immutable versions (version 0 is empty); each version is a
``ContentSet`` plus a tag map, and a publication points a publish name at one version.
These are what the store returns about them (``reconciler.store.protocol``); nothing here
does I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.model.content import ContentSet, TagEntry
from reconciler.model.digest import Digest


@dataclass(frozen=True)
class ContentSummary:
    """What a version added and removed, per kind (Pulp's ``content_summary``)."""

    added: Mapping[str, int] = field(default_factory=dict)
    removed: Mapping[str, int] = field(default_factory=dict)

    def to_json(self) -> dict[str, dict[str, int]]:
        return {"added": dict(self.added), "removed": dict(self.removed)}

    @property
    def empty(self) -> bool:
        return not any(self.added.values()) and not any(self.removed.values())


@dataclass(frozen=True)
class VersionInfo:
    repo_id: str
    number: int
    created: str
    operation: str
    summary: ContentSummary
    #: where an apply's version came from (``desired_digest``, and ``git_commit`` when
    #: ``reconciler watch`` applied a git checkout); empty for one-off commands
    provenance: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class RepositoryVersion:
    repo_id: str
    number: int
    content: ContentSet
    tags: Mapping[str, TagEntry]
    #: index children left out on purpose (a platform subset): the one exception to "an index's children are held"
    absent: frozenset[Digest] = frozenset()


@dataclass(frozen=True)
class Repository:
    id: str
    latest_version: int
    feed: str | None = None
    upstream_name: str | None = None
    publish_name: str | None = None
    protected: bool = False
    published_version: int | None = None
    created: str = ""


@dataclass(frozen=True)
class Publication:
    """A publish name pointing at one version of one repository."""

    repo_id: str
    name: str
    version: int
    protected: bool = False


@dataclass(frozen=True)
class PublicationChange:
    """A publication after ``publications_switch``: ``name`` None gives the name up, ``version`` None serves nothing."""

    repo_id: str
    name: str | None
    version: int | None = None
    protected: bool = False


@dataclass(frozen=True)
class VersionHistory:
    """What retention needs to know about one repository's versions
    (``Store.version_history``), read in one snapshot.

    ``protected``: the versions that must never be dropped, each with why (``latest``,
    ``published``; the store's one definition, ``protected_versions``). ``rows``: every
    stretch of versions ``[added, removed)`` in which the repository holds a digest (its
    blobs, manifests, indexes and the layers of its v1 images); ``sizes`` their recorded
    sizes; ``shared`` the digests of ``rows`` some other repository holds too (dropping
    versions here never frees those)."""

    repo_id: str
    numbers: tuple[int, ...]
    protected: Mapping[int, tuple[str, ...]]
    rows: tuple[tuple[Digest, int, int | None], ...] = ()
    sizes: Mapping[Digest, int] = field(default_factory=dict)
    shared: frozenset[Digest] = frozenset()


def version_ranges(numbers: Iterable[int]) -> str:
    """``[3, 4, 5, 7]`` -> ``3-5, 7`` (how plans and messages name versions)."""
    ordered = sorted(set(numbers))
    parts: list[str] = []
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        parts.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ", ".join(parts)
