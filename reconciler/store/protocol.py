"""The store protocol: what every store backend offers, in OCI words.

Content is global and deduplicated: a blob or manifest is stored once however many
repositories hold it. A repository is a sequence of immutable versions; version 0 is
empty. Each version is a ``ContentSet`` (blobs, image manifests, indexes) plus a tag map
``name -> TagEntry``. Writers give the *whole* new state to ``version_commit``; the store
works out the difference, checks the invariants, and creates exactly one new version (or
none when nothing changed). Every write bumps the store generation.

Value types here are pure; backends translate their own exceptions at their boundary.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO, Protocol, Self

from reconciler.model import Digest, Index, Manifest
from reconciler.model.v1image import V1Image


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
    """The Docker v1 side of one repository version (original-system.md 3.1).

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


class ContentBatch(Protocol):
    """Content written together and made durable together (``Store.content_batch``): a
    cold sync's hundreds of blobs pay for the disk once per batch, not once per blob.

    Nothing put into a batch is visible (``Store.blob_has``, ``manifest_has``) before
    ``commit`` returns; ``commit`` makes every file durable, then records every row in one
    transaction (bytes before metadata, as everywhere). ``close`` (also on leaving a
    ``with`` block) drops what was not committed. Thread-safe."""

    def blob_put(self, chunks: Iterable[bytes] | BinaryIO, expected: Digest, *,
                 size: int | None = None, where: str = "") -> int:
        """Stream and verify a blob (as ``Store.blob_put``); return its byte count."""
        ...
    def blob_has(self, digest: Digest) -> bool:
        """Put into this batch and not committed yet."""
        ...
    def manifests_put(self, manifests: Sequence[Manifest | Index]) -> None: ...
    def commit(self, *, before_rows: Callable[[], None] | None = None) -> None:
        """``before_rows``: called when the files are durable in place, before the rows
        are (a crash point for tests)."""
        ...
    def close(self) -> None: ...
    def __enter__(self) -> Self: ...
    def __exit__(self, *exc: object) -> None: ...


class Store(Protocol):
    """Interface of every store backend (embedded SQLite; PostgreSQL + S3 later)."""

    location: str

    # -- generation and locking -------------------------------------------------
    def generation(self) -> int: ...
    def lock(self, timeout: float = 60.0) -> AbstractContextManager[None]: ...
    def lock_lost(self) -> bool:
        """Whether the apply lock held through this store was lost meanwhile (a PostgreSQL
        session that ended); writes are then refused with ``LockLost``."""
        ...
    def check_blob_storage(self, *, probe: bool = False) -> None:
        """Raise (``BlobStorageError``: unreachable; ``StoreError``: another store's) unless
        the blob storage is known to belong to this store; cheap once it passed, unless
        ``probe`` asks for one small request to the storage now."""
        ...
    def ping(self) -> None:
        """One round trip to the metadata database (``StoreError`` when it fails)."""
        ...
    def bytes_remote(self, kind: Kind) -> bool:
        """Whether the bytes of blobs (``Kind.BLOB``) or of manifests are in remote object
        storage (each read a request that can stall or fail on its own)."""
        ...
    def close(self) -> None: ...

    # -- repositories -----------------------------------------------------------
    def repository_list(self) -> list[Repository]: ...
    def repository_find(self, repo_id: str) -> Repository | None: ...
    def repository_get(self, repo_id: str) -> Repository: ...
    def repository_by_publish_name(self, name: str) -> Repository | None: ...
    def repository_create(self, repo_id: str, *, feed: str | None = None,
                          upstream_name: str | None = None) -> Repository: ...
    def repository_update(self, repo_id: str, **fields: object) -> Repository: ...
    def repository_delete(self, repo_id: str) -> None: ...

    # -- versions ---------------------------------------------------------------
    def version_get(self, repo_id: str, number: int | None = None) -> RepositoryVersion: ...
    def version_list(self, repo_id: str) -> list[VersionInfo]: ...
    def versions_latest(self) -> dict[str, RepositoryVersion]:
        """The latest version of every repository, read in bulk (what a plan observes)."""
        ...
    def version_commit(self, repo_id: str, *, base: int, content: ContentSet,
                       tags: Mapping[str, TagEntry], operation: str,
                       provenance: Mapping[str, str] | None = None,
                       drop: Iterable[int] = (), absent: Iterable[Digest] = ()) -> VersionInfo | None:
        """Make ``content`` + ``tags`` the next version (None if nothing changed) and, in the same transaction,
        drop the versions ``drop`` (as ``versions_drop``). ``provenance``: where an apply's version came from
        (recorded with it); ``absent``: index children it lacks on purpose (kept while its indexes list them)."""
        ...

    # -- version lifecycle (retention) -------------------------------------------
    def protected_versions(self) -> dict[str, dict[int, tuple[str, ...]]]:
        """repository id -> {version: why} of every version that must never be dropped
        (the latest, the published one). The one definition retention and ``store du``
        use; ``versions_drop`` refuses these."""
        ...
    def version_history(self, repo_ids: Iterable[str]) -> dict[str, VersionHistory]:
        """What retention needs about each repository in ``repo_ids`` (unknown ones are
        left out), in one snapshot."""
        ...
    def versions_drop(self, repo_id: str, numbers: Iterable[int]) -> list[int]:
        """Drop these versions in one transaction: their rows go, content they alone
        held becomes unreferenced (``gc`` frees it). Refuses (dropping nothing) a version
        that does not exist or is protected. Returns the numbers dropped."""
        ...

    # -- publication ------------------------------------------------------------
    def publish(self, repo_id: str, *, name: str, version: int, protected: bool) -> Repository: ...
    def unpublish(self, repo_id: str) -> Repository: ...
    def publications_switch(self, changes: Sequence[PublicationChange]) -> None:
        """Several publications in ONE transaction, releases before claims (a name moves, or two swap)."""
        ...
    def publication_get(self, name: str) -> Publication | None: ...
    def publication_list(self) -> list[Publication]: ...
    def grace_versions(self, name: str) -> list[tuple[str, int]]:
        """(repository, version) that ``name`` pointed at before its publication moved,
        still served by digest during the grace period, most recent first."""
        ...
    def versions_pinned(self) -> dict[str, set[int]]:
        """Per repository, the versions nothing may drop (retention, pruning): the
        published one and those still in a grace period."""
        ...

    # -- point lookups in one version (server, export) ------------------------
    def version_tag(self, repo_id: str, version: int, name: str) -> Digest | None: ...
    def version_tag_names(self, repo_id: str, version: int, *, after: str | None = None,
                          limit: int | None = None) -> list[str]: ...
    def version_holds(self, repo_id: str, version: int, digest: Digest) -> Kind | None: ...
    def version_left_out(self, repo_id: str, version: int, digest: Digest) -> bool:
        """Whether ``digest`` is an index child the version left out (a platform not mirrored)."""

    # -- content ----------------------------------------------------------------
    def blob_has(self, digest: Digest) -> bool: ...
    def blobs_missing(self, digests: Iterable[Digest]) -> set[Digest]: ...
    def blob_size(self, digest: Digest) -> int: ...
    def blob_open(self, digest: Digest) -> BinaryIO: ...
    def blob_path(self, digest: Digest) -> Path | None: ...
    def blob_url(self, digest: Digest, *, expires: int) -> str | None:
        """A presigned URL that lets a client GET the blob's bytes straight from the blob
        storage for ``expires`` seconds; None (for every digest) when the storage cannot
        make one (local files). The caller checks the blob is in the store first."""
        ...
    def blob_put(self, chunks: Iterable[bytes] | BinaryIO, expected: Digest, *,
                 size: int | None = None, where: str = "") -> int: ...
    def manifest_has(self, digest: Digest) -> bool: ...
    def manifest_get(self, digest: Digest) -> Manifest | Index: ...
    def manifest_put(self, manifest: Manifest | Index) -> None: ...
    def manifests_put(self, manifests: Sequence[Manifest | Index]) -> None:
        """Several at once: children and their indexes become visible together."""
        ...
    def manifest_raw(self, digest: Digest) -> tuple[str, bytes]: ...
    def manifest_meta(self, digest: Digest) -> tuple[str, int] | None:
        """(media type, size) of a stored manifest or index from the metadata alone."""
        ...
    def content_batch(self) -> ContentBatch:
        """A new, empty ``ContentBatch`` of this store."""
        ...
    def manifest_refs(self, digests: Iterable[Digest]) -> dict[Digest, ManifestRefs]:
        """The references of every stored manifest/index among ``digests`` (others are
        left out), in one query: the plan builds its reference graph from this."""
        ...

    # -- Docker v1 images (original-system.md 3.1) -------------------------------
    def v1_images_put(self, images: Sequence[V1Image]) -> None:
        """Record v1 images (idempotent); each one's layer blob must be stored already."""
        ...
    def v1_image_get(self, image_id: str) -> V1Image: ...
    def v1_images_get(self, image_ids: Iterable[str]) -> dict[str, V1Image]:
        """The stored images among ``image_ids`` (others are left out)."""
        ...
    def v1_version_get(self, repo_id: str, number: int | None = None) -> V1Content: ...
    def v1_versions_latest(self) -> dict[str, V1Content]:
        """The v1 side of every repository's latest version, read in bulk (what a plan
        observes); repositories without v1 content are left out."""
        ...
    def v1_image_publications(self, image_id: str) -> list[Publication]:
        """The publications whose published version holds the image, by publish name
        (the server's ``/v1/images/<id>/...``)."""
        ...
    def v1_commit(self, repo_id: str, *, base: int, content: V1Content,
                  operation: str) -> VersionInfo | None:
        """Make ``content`` the v1 side of the next version (the OCI side carries over);
        None if nothing changed. Refuses an image not stored, a parent neither in the
        version nor masked, a tag whose image is not in the version."""
        ...

    # -- maintenance ------------------------------------------------------------
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
    def replaced(self) -> bool:
        """Whether the store was replaced under this object since it was opened (a
        restore put another database file in place): a server then opens it again."""
        ...

    # -- journal ----------------------------------------------------------------
    def journal_start(self, *, command: str, plan_digest: str | None, details: Mapping[str, object]) -> int: ...
    def journal_finish(self, entry_id: int, *, result: str, details: Mapping[str, object]) -> None: ...
    def journal_list(self, limit: int = 50) -> list[JournalEntry]: ...
    def journal_prune(self, before: str) -> int:
        """Delete finished journal entries started before ``before`` (an ISO 8601 UTC
        timestamp); entries still running stay. Returns how many went."""
        ...
