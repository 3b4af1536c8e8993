"""The adapters of the content interface for the two places content lives besides files:
an upstream registry (``RegistrySource``: any ``UpstreamSource``, so a bundle feed too)
and the store (``StoreSource`` reads one repository version, ``StoreSink`` writes into a
``ContentBatch``). The file formats' adapters live with the formats (``ops.formats``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import replace
from typing import TypeVar

from reconciler.errors import ContentNotFound, ReconcilerError
from reconciler.model import Digest, Index
from reconciler.model.content import ContentSet, Kind, TagEntry
from reconciler.model.repository import RepositoryVersion
from reconciler.ops.transfer.interface import AnyManifest, Consume, Resolved, is_not_found
from reconciler.ops.transfer.walk import TransferPolicy
from reconciler.registry.protocol import UpstreamSource
from reconciler.store.protocol import Store
from reconciler.store.roles.content import ContentBatch
from reconciler.store.roles.read import ReadView

T = TypeVar("T")
_CHUNK = 1 << 20


class RegistrySource:
    """``ContentSource`` over an upstream (a registry client, a bundle feed) bound to one
    repository name. The client verifies what it reads (manifests by digest, blobs while
    streaming) and retries temporary failures by reading into the consumer again."""

    trusted = False

    def __init__(self, upstream: UpstreamSource, name: str) -> None:
        self.upstream, self.name = upstream, name

    def tags(self) -> list[str]:
        return self.upstream.tag_list(self.name)

    def resolve(self, tag: str, *, read: bool = False) -> Resolved | None:
        if read:
            try:
                m = self.upstream.manifest_get(self.name, tag)
            except ReconcilerError as exc:
                if is_not_found(exc):
                    return None
                raise
            return Resolved(m.digest, m)
        # one HEAD; the client settles a doubtful answer with a GET and hands its manifest on
        head = self.upstream.manifest_head(self.name, tag)
        if head is None:
            return None
        if head.digest is None:
            return self.resolve(tag, read=True)  # no Docker-Content-Digest: the digest is the hash of the bytes
        return Resolved(head.digest, head.manifest)

    def manifest(self, digest: Digest) -> AnyManifest:
        return self.upstream.manifest_get(self.name, str(digest))

    def blob_size(self, digest: Digest) -> int | None:
        return None  # a HEAD per blob would cost a request; the stream's length is checked instead

    def read_blob(self, digest: Digest, consume: Consume[T]) -> T:
        return self.upstream.blob_fetch(self.name, digest, consume)

    def location(self, kind: str, digest: Digest) -> str:
        return upstream_url(self.upstream, self.name, f"{'manifests' if kind == 'manifest' else 'blobs'}/{digest}",
                            method="GET ")


def upstream_url(upstream: object, name: str, path: str, *, method: str = "") -> str:
    """The URL a request went to, for messages (sources without a URL get a path)."""
    config = getattr(upstream, "config", None)
    base = str(getattr(config, "url", "") or "").rstrip("/")
    return f"{method}{base}/v2/{name}/{path}"


class StoreSource:
    """``ContentSource`` over stored content: one repository version (``of_version``: an
    export), or the content of several (a bundle). Only ``content`` is readable. The
    bytes were verified when they were stored: not hashed again here (``store check`` is
    what finds a damaged file).

    ``absent``: index children the content lacks on purpose (a platform subset, the
    versions' ``absent`` sets); a walk over it passes them as ``TransferPolicy.absent``
    (``policy``), so an index kept byte for byte is moved without its other platforms."""

    trusted = True

    def __init__(self, store: ReadView, content: ContentSet, tags: Mapping[str, TagEntry], where: str,
                 absent: frozenset[Digest] = frozenset()) -> None:
        self.store, self.content, self._tags, self.where = store, content, tags, where
        self.absent = absent

    @classmethod
    def of_version(cls, store: ReadView, version: RepositoryVersion) -> StoreSource:
        return cls(store, version.content, version.tags, f"{version.repo_id} version {version.number}",
                   version.absent)

    def policy(self, base: TransferPolicy) -> TransferPolicy:
        """``base`` that does not follow the children this content lacks on purpose."""
        return replace(base, absent=base.absent | self.absent)

    def tags(self) -> list[str]:
        return sorted(self._tags)

    def resolve(self, tag: str, *, read: bool = False) -> Resolved | None:
        entry = self._tags.get(tag)
        if entry is None:
            return None
        return Resolved(entry.digest, self.manifest(entry.digest) if read else None)

    def _held(self, digest: Digest) -> None:
        if digest not in self.content:
            raise ContentNotFound(f"{self.where}: no {digest}")

    def manifest(self, digest: Digest) -> AnyManifest:
        self._held(digest)
        return self.store.manifest_get(digest)

    def blob_size(self, digest: Digest) -> int | None:
        self._held(digest)
        return self.store.blob_size(digest)

    def read_blob(self, digest: Digest, consume: Consume[T]) -> T:
        self._held(digest)
        with self.store.blob_open(digest) as f:
            return consume(iter(lambda: f.read(_CHUNK), b""))

    def location(self, kind: str, digest: Digest) -> str:
        return f"{self.where}: {kind} {digest}"


class StoreSink:
    """``ContentSink`` into the store through a ``ContentBatch``: nothing is visible
    before the batch commits (blob files, then manifest files, then every row in one
    transaction). Several transfers may share one batch (apply: one for all
    repositories), and what one put is not read again by another."""

    def __init__(self, store: Store, batch: ContentBatch) -> None:
        self.store, self.batch = store, batch

    def manifests_held(self, digests: Iterable[Digest]) -> set[Digest]:
        return {d for d in digests if self.store.manifest_has(d)}

    def manifest_read(self, digest: Digest) -> AnyManifest | None:
        return self.store.manifest_get(digest)

    def blobs_missing(self, digests: Iterable[Digest]) -> set[Digest]:
        # (a blob another transfer put into the same batch is not read again)
        return {d for d in self.store.blobs_missing(digests) if not self.batch.blob_has(d)}

    def blob_put(self, digest: Digest, chunks: Iterator[bytes], *, size: int | None, where: str) -> int:
        return self.batch.blob_put(chunks, digest, size=size, where=where)

    def manifests_put(self, manifests: Sequence[AnyManifest]) -> None:
        self.batch.manifests_put(manifests)

    def commit(self) -> None:
        self.batch.commit()


class MemorySink:
    """``ContentSink`` that writes nothing: manifests are kept in memory (``manifests``)
    and ``held_by`` says what is held already. The plan's refresh walks an upstream into
    one, so planning never writes to the store (and never makes another saved plan stale).

    The walk stops at a held manifest, except at a held index a platform filter must
    judge (``read_indexes``) or, when some repository holds a platform subset
    (``partial``), one whose children the store lacks: those are read back, so the walk
    goes on below them. ``seen`` collects every held manifest the walk met, ``indexes``
    the held indexes read back. Held digests are looked up in bulk, once per level."""

    def __init__(self, held_by: Store, *, read_indexes: bool = False, partial: bool = False) -> None:
        self.store, self.read_indexes, self.partial = held_by, read_indexes, partial
        self.manifests: dict[Digest, AnyManifest] = {}
        self.seen: set[Digest] = set()
        self.indexes: dict[Digest, Index] = {}

    def manifests_held(self, digests: Iterable[Digest]) -> set[Digest]:
        held = {d for d in digests if self.store.manifest_has(d)}
        self.seen |= held
        if held and (self.read_indexes or self.partial):
            self._read_indexes(held)
        return held

    def _read_indexes(self, held: set[Digest]) -> None:
        refs = {d: r for d, r in self.store.manifest_refs(held).items() if r.kind is Kind.INDEX}
        if not self.read_indexes:  # only those a platform subset left without some children
            children = {c for r in refs.values() for c in r.children}
            have = self.store.manifest_refs(children).keys() if children else set()
            refs = {d: r for d, r in refs.items() if not have >= set(r.children)}
        for d in refs:
            if d not in self.indexes and isinstance(m := self.store.manifest_get(d), Index):
                self.indexes[d] = m

    def manifest_read(self, digest: Digest) -> AnyManifest | None:
        return self.indexes.get(digest)

    def blobs_missing(self, digests: Iterable[Digest]) -> set[Digest]:
        return set()  # blobs are counted from descriptors, never read here

    def blob_put(self, digest: Digest, chunks: Iterator[bytes], *, size: int | None, where: str) -> int:
        raise AssertionError("a MemorySink takes no blobs")

    def manifests_put(self, manifests: Sequence[AnyManifest]) -> None:
        for m in manifests:
            self.manifests.setdefault(m.digest, m)

    def commit(self) -> None:
        pass
