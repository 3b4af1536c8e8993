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
