"""What the sync operation needs from an upstream: the read side of the distribution
API. The real ``RegistryClient`` implements it; tests may use fakes.

Blob downloads are pushed into a *sink* rather than returned as a stream so that the
client can retry a temporary failure by calling the sink again with a fresh stream; a
sink that raises ``DigestMismatch`` (or any non-temporary error) is never retried.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from reconciler.errors import RegistryError
from reconciler.model import Descriptor, Digest, Index, Manifest

T = TypeVar("T")


@dataclass(frozen=True)
class ManifestHead:
    """What a HEAD told us. ``digest`` is None when the registry sent no
    ``Docker-Content-Digest`` (the caller then GETs and hashes). ``manifest`` is set when
    the answer came from a GET after all (a registry whose HEADs cannot be trusted): the
    caller then has the manifest too and need not GET it again."""

    digest: Digest | None
    media_type: str | None
    size: int | None
    manifest: Manifest | Index | None = field(default=None, compare=False, repr=False)


@dataclass
class RequestStats:
    """Requests made, by kind, and body bytes received (for summaries and tests)."""

    counts: dict[str, int] = field(default_factory=dict)
    bytes_received: int = 0

    def add(self, kind: str, n: int = 1) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + n

    @property
    def total(self) -> int:
        return sum(self.counts.values())


class UpstreamSource(Protocol):
    stats: RequestStats

    def tag_list(self, name: str) -> list[str]:
        """Every tag of ``name``, following ``Link`` pagination."""
        ...

    def manifest_head(self, name: str, reference: str) -> ManifestHead | None:
        """HEAD a tag or digest; None when it does not exist (404)."""
        ...

    def manifest_get(self, name: str, reference: str) -> Manifest | Index:
        """GET and parse a manifest; when ``reference`` is a digest the bytes are verified."""
        ...

    def blob_fetch(self, name: str, digest: Digest, sink: Callable[[Iterator[bytes]], T]) -> T:
        """Stream a blob's body into ``sink`` (retrying temporary failures)."""
        ...

    def referrers(self, name: str, digest: Digest) -> list[Descriptor] | None:
        """The descriptors the upstream's referrers API lists for ``digest`` (every page);
        None when it has no referrers API (a 404: a registry with the API answers 200,
        with an empty index, for any digest)."""
        ...

    def close(self) -> None: ...


class UploadLost(RegistryError):
    """A chunked upload failed and the registry cannot say how much of it arrived, so it
    cannot be resumed: the blob must be sent again from its start (``ops.push`` walks
    again, reading it from the source anew)."""


class PushTarget(Protocol):
    """The push side of the distribution API, for one target registry (``registry.push.
    PushClient``): what a registry sink (``ops.transfer.registrysink``) needs. Every
    method retries temporary failures itself; ``name`` is the repository at the target."""

    stats: RequestStats
    #: the registry's base URL, for messages and for the record of what was pushed where
    base: str

    def blob_exists(self, name: str, digest: Digest) -> bool:
        """HEAD the blob: whether ``name`` holds it."""
        ...

    def blob_known(self, name: str, digest: Digest) -> bool | None:
        """Whether ``name`` holds the blob, as this client last heard (no request); None: not asked."""
        ...

    def blob_mount(self, name: str, digest: Digest, from_name: str) -> bool:
        """Mount ``digest`` from ``from_name`` on the same registry (no bytes move);
        False when the registry would not (the blob is then uploaded)."""
        ...

    def blob_upload(self, name: str, digest: Digest, chunks: Iterator[bytes], size: int | None) -> int:
        """Upload one blob from ``chunks`` (read once), verified by the registry's
        ``Docker-Content-Digest``; returns the bytes sent."""
        ...

    def manifest_exists(self, name: str, reference: str) -> Digest | None:
        """HEAD a manifest by tag or digest: its digest, None when absent."""
        ...

    def manifest_put(self, name: str, reference: str, manifest: Manifest | Index) -> Digest | None:
        """PUT a manifest by digest or tag, verified by ``Docker-Content-Digest``; returns
        the ``OCI-Subject`` the registry answered (it lists the manifest as a referrer of
        that subject: the referrers API), None when it did not."""
        ...

    def manifest_read(self, name: str, reference: str) -> Manifest | Index | None:
        """GET a manifest by tag or digest; None when there is none (404)."""
        ...

    def tag_delete(self, name: str, tag: str) -> None:
        """Delete one tag (never another tag on the same manifest)."""
        ...

    def referrers(self, name: str, digest: Digest) -> list[Descriptor] | None:
        """The referrers API's list for ``digest``; None when the registry has no such API."""
        ...

    def close(self) -> None: ...
