"""The content interface: where content comes from (``ContentSource``) and where it goes
(``ContentSink``), the two sides of ``ops.transfer.walk.transfer``.

In the spirit of go-containerregistry's ``remote`` / ``layout`` / ``tarball`` adapters,
every place content lives is one small adapter on one side or both:

- sources: an upstream registry bound to one repository (``ops.transfer.adapters.
  RegistrySource``, which also reads a bundle feed through the same ``UpstreamSource``),
  a store repository version (``StoreSource``), an upload file of any format
  (``ops.formats.filesource.FileSource``);
- sinks: the store's content batch (``StoreSink``), an export writer
  (``ops.formats.tarsinks``), the bundle writer.

Blob access has one vocabulary here: a source *reads* a blob into a consumer
(``read_blob(digest, consume)``: the consumer gets an iterator of byte chunks and may be
called again with a fresh one after a temporary failure, which is how the registry client
retries), a sink *puts* a blob from such chunks (``blob_put``). The walk, not the
adapters, decides what to move and checks what moved (see ``walk``).

How the next ones plug in (not built yet):

- a registry sink (push to an external registry, issue 23): ``blobs_missing`` is a HEAD
  per blob (or the mount API), ``blob_put`` a monolithic or chunked upload,
  ``manifests_put`` PUTs children before parents (the walk hands them in that order),
  ``manifests_held`` HEADs, and ``manifest_read`` may return None (a registry keeps the
  closure of what it holds, so the walk need not go below a held manifest);
- referrers (issue 22): a source that can list the manifests whose ``subject`` is a
  digest (``referrers(digest)``, the OCI referrers API or its tag fallback) lets the walk
  add them to the next level when ``TransferPolicy.referrers`` is set; sinks need nothing
  new (a referrer is a manifest like any other).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from reconciler.errors import NotFound, RegistryError
from reconciler.model import Digest, Index, Manifest

T = TypeVar("T")

AnyManifest = Manifest | Index
#: reads a blob's chunks to the end and returns what it made of them
Consume = Callable[[Iterator[bytes]], T]


@dataclass(frozen=True)
class Resolved:
    """What a tag points at: its digest, and its manifest when resolving read it (asked
    for with ``read``, or a registry that sends no digest header, whose bytes are then
    hashed). A walk takes that manifest as ``prefetched`` rather than reading it again."""

    digest: Digest
    manifest: AnyManifest | None = None


def is_not_found(exc: BaseException) -> bool:
    """A source's "no such thing": ``NotFound``, or a registry's 404 however it came."""
    return isinstance(exc, NotFound) or (isinstance(exc, RegistryError) and exc.status == 404)


class ContentSource(Protocol):
    """Content to read: tags, manifests by digest, blobs by digest (one repository)."""

    #: its bytes were verified when they were written and are read from our own
    #: storage (a store version): the walk does not hash them again
    trusted: bool

    def tags(self) -> list[str]:
        """Every tag name."""
        ...

    def resolve(self, tag: str, *, read: bool = False) -> Resolved | None:
        """What ``tag`` points at; None when there is no such tag. ``read``: its manifest
        is wanted too (a registry then GETs the tag once instead of a HEAD now and a
        GET later); without it a registry answers from a HEAD."""
        ...

    def manifest(self, digest: Digest) -> AnyManifest:
        """The manifest or index ``digest`` names, parsed (``NotFound`` when absent)."""
        ...

    def blob_size(self, digest: Digest) -> int | None:
        """The size of the blob as the source holds it, when known without reading it
        (a file in an archive); None when only reading tells (a registry)."""
        ...

    def read_blob(self, digest: Digest, consume: Consume[T]) -> T:
        """Stream the blob into ``consume`` (see the module doc)."""
        ...

    def location(self, kind: str, digest: Digest) -> str:
        """Where ``kind`` (``manifest`` or ``blob``) ``digest`` is read from, for
        messages: a request (``GET https://host/v2/name/blobs/sha256:...``) or a file
        member (``image.tar: blobs/sha256/...``)."""
        ...


class ContentSink(Protocol):
    """Content to write: what is missing, blobs and manifests in a batch, commit."""

    def manifests_held(self, digests: Iterable[Digest]) -> set[Digest]:
        """Those of ``digests`` the sink holds already (not fetched again)."""
        ...

    def manifest_read(self, digest: Digest) -> AnyManifest | None:
        """A held manifest, parsed, so the walk can go on below it; None when the sink
        cannot read back (the walk then does not go below it)."""
        ...

    def blobs_missing(self, digests: Iterable[Digest]) -> set[Digest]:
        """Those of ``digests`` the sink lacks (only these are read from the source)."""
        ...

    def blob_put(self, digest: Digest, chunks: Iterator[bytes], *, size: int | None, where: str) -> int:
        """Write one blob from ``chunks`` (verified by the walk: a ``VerifiedStream``
        raises at its end unless the bytes are right, so nothing may become visible
        before the stream ended); return its byte count. Called from several threads."""
        ...

    def manifests_put(self, manifests: Sequence[AnyManifest]) -> None:
        """Write manifests and indexes, children before the indexes that list them."""
        ...

    def commit(self) -> None:
        """Make everything put durable and visible together."""
        ...
