"""What a store backend needs from the place where content bytes live.

The metadata (which blobs exist, their sizes, which versions hold them) lives in the
store's database; the bytes live in a ``BlobStorage``: a folder on this machine
(``LocalBlobs``, also used for manifest files) or an S3-compatible bucket (``S3Blobs``).
Every implementation keeps one promise: nothing becomes visible under a digest until
its bytes were verified against that digest, so a reader never sees partial or wrong
content, and a crash leaves at most a temporary upload that ``remove_stale_uploads``
cleans up.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO, Protocol

from reconciler.model import Digest


class BlobStorage(Protocol):
    """Content-addressed bytes: ``write`` verifies, everything else is by digest."""

    #: where the bytes are, for messages: a folder path or ``s3://bucket/prefix``
    location: str

    def path(self, digest: Digest) -> Path | None:
        """The local file that would hold ``digest`` (for ``sendfile``); None when the
        storage is remote."""
        ...

    def exists(self, digest: Digest) -> bool: ...

    def size(self, digest: Digest) -> int | None:
        """The stored size of ``digest`` in bytes; None when it is not stored."""
        ...

    def open(self, digest: Digest) -> BinaryIO:
        """A seekable reader of the stored bytes; ``ContentNotFound`` when missing."""
        ...

    def write(self, chunks: Iterable[bytes] | BinaryIO, expected: Digest, *,
              size: int | None = None, where: str = "") -> int:
        """Stream ``chunks`` in, verify size and digest, and only then make them visible
        under ``expected``; return the byte count. A mismatch stores nothing."""
        ...

    def write_bytes(self, data: bytes, digest: Digest) -> None:
        """Store small content whose digest the caller already verified."""
        ...

    def remove(self, digest: Digest) -> int:
        """Delete ``digest``; the bytes freed (0 when it was not there)."""
        ...

    def all_digests(self) -> Iterable[tuple[Digest, Path | str]]:
        """Every stored digest with its file path or object key (for gc and check)."""
        ...

    def remove_stale_uploads(self, older_than: float, *, dry_run: bool = False) -> tuple[int, int]:
        """Remove temporary uploads older than ``older_than`` seconds (a writer killed
        midway left them); (count, bytes) removed. Younger ones may belong to a running
        writer and stay. ``dry_run``: count them, remove nothing."""
        ...

    def read_marker(self, name: str) -> str | None:
        """The text of a small named object beside the content (``<folder>/<name>`` or
        ``<prefix>/<name>``; the PostgreSQL store's ``store-id``); None when there is none."""
        ...

    def write_marker(self, name: str, text: str) -> None:
        """Write (replace) that small object, durably and atomically."""
        ...

    def presigned_url(self, digest: Digest, *, expires: int) -> str | None:
        """A URL that lets anyone holding it GET the blob for ``expires`` seconds, or
        None when this storage cannot make one (a local folder)."""
        ...

    def close(self) -> None: ...
