"""What the request handlers read, and how: one place that decides which reads may wait
on the object storage.

- **Membership** (may this name see this digest?) comes from the database: the published
  version, else a version the name pointed at within the grace period after its
  publication moved (``ReadView.grace_versions``), so a client that fetched the old manifest
  just before a publish still gets its layers.
- **Metadata** (a HEAD's size and media type) comes from the database too.
- **Manifest bytes** go through the worker's ``ManifestCache``; **blob bytes** and
  presigned URLs are read from the store. Reads of remote bytes pass the ``StorageGuard``
  (a fast 503 instead of a hung thread when S3 stalls); local files do not need it.
"""

from __future__ import annotations

from typing import BinaryIO

from reconciler.model import Digest
from reconciler.model.content import Kind
from reconciler.model.repository import Publication
from reconciler.server.guard import StorageGuard
from reconciler.server.manifestcache import ManifestCache
from reconciler.store.roles.read import ReadView


class Content:
    def __init__(self, store: ReadView, *, cache: ManifestCache, guard: StorageGuard) -> None:
        self.store = store
        self.cache = cache
        self.guard = guard
        self._remote: dict[Kind, bool] = {}

    def remote(self, kind: Kind) -> bool:
        if kind not in self._remote:
            self._remote[kind] = self.store.bytes_remote(kind)
        return self._remote[kind]

    # -- membership and metadata (the database) -----------------------------------------
    def holds(self, pub: Publication, digest: Digest) -> Kind | None:
        """The kind of ``digest`` if ``pub``'s name may serve it: its published version
        holds it, or a version it pointed at before, within the grace period."""
        kind = self.store.version_holds(pub.repo_id, pub.version, digest)
        if kind is not None:
            return kind
        for repo_id, version in self.store.grace_versions(pub.name):
            kind = self.store.version_holds(repo_id, version, digest)
            if kind is not None:
                return kind
        return None

    def manifest_meta(self, digest: Digest) -> tuple[str, int] | None:
        return self.store.manifest_meta(digest)

    # -- bytes ----------------------------------------------------------------------------
    def manifest(self, digest: Digest) -> tuple[str, bytes]:
        """(media type, bytes): from the cache, else read (guarded when remote)."""
        return self.cache.get(digest, self._read_manifest)

    def _read_manifest(self, digest: Digest) -> tuple[str, bytes]:
        if not self.remote(Kind.MANIFEST):
            return self.store.manifest_raw(digest)
        with self.guard.call():
            return self.store.manifest_raw(digest)

    def open_blob(self, digest: Digest) -> BinaryIO:
        """A reader of the blob; a remote one is opened under the guard (until S3 answers)
        and reports a failed read to it."""
        if not self.remote(Kind.BLOB):
            return self.store.blob_open(digest)
        with self.guard.call():
            file = self.store.blob_open(digest)
        return self.guard.watched(file)

    def blob_url(self, digest: Digest, *, expires: int) -> str | None:
        """A presigned URL (local computation, once the storage is known to be the
        store's: checking that may need the storage, hence the guard)."""
        if not self.remote(Kind.BLOB):
            return None
        with self.guard.call():
            return self.store.blob_url(digest, expires=expires)
