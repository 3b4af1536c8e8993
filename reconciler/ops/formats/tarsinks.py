"""Export writers as sinks of the content interface (``ops.transfer.interface``): the
transfer walk streams a version's blobs into the tar as it reads them, and its manifests
at ``commit``, sorted by digest, so an export is the same bytes in the same order
whichever source fed it.

- ``LayoutSink``: an OCI image layout with every digest kept (``blobs/<alg>/<hex>``,
  exact bytes); the caller writes ``oci-layout`` and ``index.json`` first
  (``ocilayout.write_index``);
- ``CraneSink``: Crane's static tree (``crane``): ``blobs/<digest>``,
  ``manifests/<1|2|list>/<digest>``, then the tag links and ``tags/list``; the caller
  writes the app file first (``crane.write_app_file``).

A tar has one write position: blobs are put one at a time (``TransferPolicy(jobs=1)``).
``held``: content another file carries already (a delta bundle's base), neither written
nor walked below; by default every blob and manifest of the walk is written.

The bundle writer (``bundle.writer``) is a ``LayoutSink`` after its ``bundle.json``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Collection, Iterable, Iterator, Sequence

from reconciler.errors import InvalidInput
from reconciler.model import Digest, Index, Manifest
from reconciler.model.repository import RepositoryVersion
from reconciler.ops.formats.crane import crane_dir
from reconciler.ops.formats.ocilayout import blob_path
from reconciler.ops.formats.tarout import TarWriter


class TarSink:
    """What both tar sinks share: blobs as members at once, manifests at ``commit``."""

    def __init__(self, w: TarWriter, *, held: Collection[Digest] = frozenset()) -> None:
        self.w, self.held = w, held
        self._lock = threading.Lock()
        self.blobs: set[Digest] = set()
        self.manifests: dict[Digest, tuple[str, bytes]] = {}

    def blob_member(self, digest: Digest) -> str:
        raise NotImplementedError

    def manifest_member(self, digest: Digest, media_type: str) -> str:
        raise NotImplementedError

    def manifests_held(self, digests: Iterable[Digest]) -> set[Digest]:
        return {d for d in digests if d in self.held}

    def manifest_read(self, digest: Digest) -> Manifest | Index | None:
        return None

    def blobs_missing(self, digests: Iterable[Digest]) -> set[Digest]:
        return {d for d in digests if d not in self.blobs and d not in self.held}

    def blob_put(self, digest: Digest, chunks: Iterator[bytes], *, size: int | None, where: str) -> int:
        if size is None:
            raise InvalidInput(f"{where}: the size of blob {digest} is not known, and a tar member needs it")
        with self._lock:
            n = self.w.chunks(self.blob_member(digest), size, chunks)
            self.blobs.add(digest)
        return n

    def manifests_put(self, manifests: Sequence[Manifest | Index]) -> None:
        for m in manifests:
            self.manifests.setdefault(m.digest, (m.media_type, m.raw))

    def commit(self) -> None:
        for d, (media_type, raw) in sorted(self.manifests.items()):
            self.w.data(self.manifest_member(d, media_type), raw)


class LayoutSink(TarSink):
    """An OCI layout's ``blobs/`` (see the module doc)."""

    def blob_member(self, digest: Digest) -> str:
        return blob_path(digest)

    def manifest_member(self, digest: Digest, media_type: str) -> str:
        return blob_path(digest)


class CraneSink(TarSink):
    """Crane's static tree after its app file (see the module doc)."""

    def __init__(self, w: TarWriter, version: RepositoryVersion, *, registry_id: str) -> None:
        super().__init__(w)
        self.version, self.registry_id = version, registry_id

    def blob_member(self, digest: Digest) -> str:
        return f"blobs/{digest}"

    def manifest_member(self, digest: Digest, media_type: str) -> str:
        return f"manifests/{crane_dir(media_type)}/{digest}"

    def commit(self) -> None:
        super().commit()
        for tag, entry in sorted(self.version.tags.items()):
            # a relative link in the same directory, as publish made them
            # (docs/original-system.md, "The static tree")
            self.w.symlink(f"manifests/{crane_dir(self.manifests[entry.digest][0])}/{tag}", str(entry.digest))
        self.w.data("tags/list", json.dumps({"name": self.registry_id, "tags": sorted(self.version.tags)}).encode())
