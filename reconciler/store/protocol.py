"""The store protocol: what every store backend offers, in OCI words.

Content is global and deduplicated: a blob or manifest is stored once however many
repositories hold it. A repository is a sequence of immutable versions; version 0 is
empty. Each version is a ``ContentSet`` (blobs, image manifests, indexes) plus a tag map
``name -> TagEntry``. Writers give the *whole* new state to ``version_commit``; the store
works out the difference, checks the invariants, and creates exactly one new version (or
none when nothing changed). Every write bumps the store generation.

The values it takes and returns are the model's (``reconciler.model.content``,
``.repository``, ``.reports``); backends translate their own exceptions at their boundary.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import BinaryIO, Protocol, Self

from reconciler.model import Digest, Index, Manifest
from reconciler.model.content import ContentSet, Kind, ManifestRefs, TagEntry, V1Content
from reconciler.model.reports import CheckReport, GcReport, JournalEntry, StoreUsage
from reconciler.model.repository import (
    Publication,
    PublicationChange,
    Repository,
    RepositoryVersion,
    VersionHistory,
    VersionInfo,
)
from reconciler.model.v1image import V1Image


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
                       drop: Iterable[int] = ()) -> VersionInfo | None:
        """Make ``content`` + ``tags`` the next version (None if nothing changed) and, in
        the same transaction, drop the versions ``drop`` (as ``versions_drop``).
        ``provenance``: where an apply's version came from (recorded with it)."""
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
