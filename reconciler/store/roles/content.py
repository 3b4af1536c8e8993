"""The store's content role: putting blobs and manifests in, asking what is there, and the
references recorded for each manifest.

Content is global and deduplicated: a blob or manifest is stored once however many
repositories hold it, and it is invisible to clients until a version references it, so
writing content changes nothing anyone sees. Sync, upload and apply's downloads write
through this role; the plan's graph reads ``manifest_refs``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import BinaryIO, Protocol, Self

from reconciler.model import Digest, Index, Manifest
from reconciler.model.content import ManifestRefs


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


class ContentStore(Protocol):
    """Blobs and manifests in, and what is there (reads of their bytes: ``ReadView``)."""

    # -- blobs -----------------------------------------------------------------------------
    def blob_has(self, digest: Digest) -> bool: ...
    def blobs_missing(self, digests: Iterable[Digest]) -> set[Digest]: ...
    def blob_put(self, chunks: Iterable[bytes] | BinaryIO, expected: Digest, *,
                 size: int | None = None, where: str = "") -> int: ...

    # -- manifests and indexes -------------------------------------------------------------
    def manifest_has(self, digest: Digest) -> bool: ...
    def manifest_put(self, manifest: Manifest | Index) -> None: ...
    def manifests_put(self, manifests: Sequence[Manifest | Index]) -> None:
        """Several at once: children and their indexes become visible together."""
        ...
    def manifest_refs(self, digests: Iterable[Digest]) -> dict[Digest, ManifestRefs]:
        """The references of every stored manifest/index among ``digests`` (others are
        left out), in one query: the plan builds its reference graph from this."""
        ...
    def manifest_subjects(self, digests: Iterable[Digest]) -> dict[Digest, tuple[Digest, str | None]]:
        """The ``subject`` and listed artifact type of every stored manifest/index among
        ``digests`` that has a subject (referrer -> (subject, type); others are left out),
        in one query: the reference graph knows which referrer follows which image (copy,
        remove, the verify policy)."""
        ...

    # -- batches ---------------------------------------------------------------------------
    def content_batch(self) -> ContentBatch:
        """A new, empty ``ContentBatch`` of this store."""
        ...
