"""``FileSource``: an upload file of any format as a ``ContentSource`` (the content
interface, ``ops.transfer.interface``), over what its reader parsed (``Parsed``: skopeo
``dir:``, OCI layout or archive, ``docker save``, an index JSON file).

The readers check the file's own structure (tar members, ``index.json``, what a
``docker save`` layer compresses to); what is moved into the store, and how it is
checked on the way (sizes, digests), is the transfer walk's.
"""

from __future__ import annotations

from typing import TypeVar

from reconciler.errors import NotFound
from reconciler.model import Digest, Index, Manifest
from reconciler.ops.formats.upload_formats import Parsed
from reconciler.ops.transfer.interface import Consume, Resolved

T = TypeVar("T")
_CHUNK = 1 << 20


class FileSource:
    """``ContentSource`` over a parsed upload file (see the module doc). Blob members are
    read one at a time (a tar file has one read position)."""

    trusted = False

    def __init__(self, parsed: Parsed, where: str) -> None:
        self.parsed, self.where = parsed, where
        self._manifests = {m.digest: m for m in parsed.manifests}

    def tags(self) -> list[str]:
        return sorted(self.parsed.tags)

    def resolve(self, tag: str, *, read: bool = False) -> Resolved | None:
        digest = self.parsed.tags.get(tag)
        m = self._manifests.get(digest) if digest is not None else None
        return Resolved(m.digest, m) if m is not None else None  # parsed already: the manifest costs nothing

    def manifest(self, digest: Digest) -> Manifest | Index:
        m = self._manifests.get(digest)
        if m is None:
            raise NotFound(f"{self.where}: no manifest {digest} in the file")
        return m

    def blob_size(self, digest: Digest) -> int | None:
        found = self.parsed.blobs.get(digest)
        return found.size if found is not None else None

    def read_blob(self, digest: Digest, consume: Consume[T]) -> T:
        found = self.parsed.blobs.get(digest)
        if found is None:
            raise NotFound(f"{self.where}: no blob {digest} in the file")
        with found.open() as f:
            return consume(iter(lambda: f.read(_CHUNK), b""))

    def location(self, kind: str, digest: Digest) -> str:
        found = self.parsed.blobs.get(digest) if kind == "blob" else None
        return found.where if found is not None else f"{self.where}: {kind} {digest}"
