"""The store's read view: everything serving a registry needs, and nothing that writes.

``reconciler serve`` (store mode, the web catalog, the v1 API, ``/metrics``, the readiness
probe) depends on this role alone, so a read replica can never write by accident (the
layering test, tests/unit/test_layering.py, holds the server to this module). Exports and
bundles read through it too. Every store backend implements it as part of
``reconciler.store.protocol.Store``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Protocol

from reconciler.model import Digest, Index, Manifest
from reconciler.model.content import Kind, V1Content
from reconciler.model.referrers import Referrer
from reconciler.model.repository import Publication, Repository, RepositoryVersion, VersionInfo
from reconciler.model.v1image import V1Image


class ReadView(Protocol):
    """Reads of publications, versions, manifests and blobs, and the health of the store."""

    location: str

    # -- publications ----------------------------------------------------------------------
    def publication_get(self, name: str) -> Publication | None: ...
    def publication_tag(self, name: str, tag: str) -> tuple[Publication, Digest | None] | None:
        """``publication_get(name)`` and, in its published version, ``version_tag`` of
        ``tag``, read together."""
        ...

    def publication_list(self) -> list[Publication]: ...
    def grace_versions(self, name: str) -> list[tuple[str, int]]:
        """(repository, version) that ``name`` pointed at before its publication moved,
        still served by digest during the grace period, most recent first."""
        ...

    # -- repositories and versions ---------------------------------------------------------
    def repository_get(self, repo_id: str) -> Repository: ...
    def version_get(self, repo_id: str, number: int | None = None) -> RepositoryVersion: ...
    def version_list(self, repo_id: str) -> list[VersionInfo]: ...

    # -- point lookups in one version (server, export) -------------------------------------
    def version_tag(self, repo_id: str, version: int, name: str) -> Digest | None: ...
    def version_tag_names(self, repo_id: str, version: int, *, after: str | None = None,
                          limit: int | None = None) -> list[str]: ...
    def version_holds(self, repo_id: str, version: int, digest: Digest) -> Kind | None: ...
    def version_left_out(self, repo_id: str, version: int, digest: Digest) -> bool:
        """Whether ``digest`` is an index child the version left out (a platform not mirrored)."""
        ...

    def version_referrers(self, repo_id: str, version: int, subject: Digest, *, artifact_type: str | None = None,
                          after: Digest | None = None, limit: int | None = None) -> list[Referrer]:
        """The manifests and indexes of that version whose ``subject`` is ``subject``
        (whether or not the version holds the subject), by digest; only those listed
        with ``artifact_type`` when given; those after ``after``, at most ``limit``."""
        ...

    # -- content ---------------------------------------------------------------------------
    def manifest_get(self, digest: Digest) -> Manifest | Index: ...
    def manifest_raw(self, digest: Digest) -> tuple[str, bytes]: ...
    def manifest_meta(self, digest: Digest) -> tuple[str, int] | None:
        """(media type, size) of a stored manifest or index from the metadata alone."""
        ...
    def blob_size(self, digest: Digest) -> int: ...
    def blob_open(self, digest: Digest) -> BinaryIO: ...
    def blob_path(self, digest: Digest) -> Path | None: ...
    def blob_url(self, digest: Digest, *, expires: int) -> str | None:
        """A presigned URL that lets a client GET the blob's bytes straight from the blob
        storage for ``expires`` seconds; None (for every digest) when the storage cannot
        make one (local files). The caller checks the blob is in the store first."""
        ...

    # -- Docker v1 images (docs/original-system.md, "v1 images and tags") ---------------------
    def v1_version_get(self, repo_id: str, number: int | None = None) -> V1Content: ...
    def v1_image_get(self, image_id: str) -> V1Image: ...
    def v1_images_get(self, image_ids: Iterable[str]) -> dict[str, V1Image]:
        """The stored images among ``image_ids`` (others are left out)."""
        ...
    def v1_image_publications(self, image_id: str) -> list[Publication]:
        """The publications whose published version holds the image, by publish name
        (the server's ``/v1/images/<id>/...``)."""
        ...

    # -- health ----------------------------------------------------------------------------
    def ping(self) -> None:
        """One round trip to the metadata database (``StoreError`` when it fails)."""
        ...
    def check_blob_storage(self, *, probe: bool = False) -> None:
        """Raise (``BlobStorageError``: unreachable; ``StoreError``: another store's) unless
        the blob storage is known to belong to this store; cheap once it passed, unless
        ``probe`` asks for one small request to the storage now."""
        ...
    def bytes_remote(self, kind: Kind) -> bool:
        """Whether the bytes of blobs (``Kind.BLOB``) or of manifests are in remote object
        storage (each read a request that can stall or fail on its own)."""
        ...
    def replaced(self) -> bool:
        """Whether the store was replaced under this object since it was opened (a
        restore put another database file in place): a server then opens it again."""
        ...
    def close(self) -> None: ...
