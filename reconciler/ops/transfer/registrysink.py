"""``RegistrySink``: the content interface's sink over a registry we push to (issue 23),
behind ``registry.protocol.PushTarget`` as ``RegistrySource`` is behind ``UpstreamSource``.

The walk hands it what to write in the order a registry needs:

- ``manifests_held``: one HEAD per manifest (children of a held index are not walked:
  ``manifest_read`` returns None, since a registry keeps the closure of what it holds),
  but none for a manifest (``read`` from the source) with a blob the client already heard
  the target lacks (the plan's HEADs): a registry holding a manifest holds its blobs;
- ``blobs_missing``: one HEAD per blob, in parallel; a blob the target lacks that another
  repository of the same registry holds (``MountIndex``: repositories we pushed) is
  mounted there and then (no bytes move), so the walk never reads it;
- ``blob_put``: an upload of the verified stream (``PushTarget.blob_upload``);
- ``manifests_put``: PUT by digest, children before the indexes that list them (a
  manifest a tag names is put by that tag instead, unless an index lists it); a
  referrer the registry answers with ``OCI-Subject`` is listed by its referrers API
  (``listed``), the others need the tag schema's index (``ops.push.push_referrers``);
- ``commit``: only then the tags (``tags``), each PUT by name. A failure anywhere before
  leaves every tag where it was: a tag never points at a manifest whose blobs are not
  there. ``on_tag`` is told before each tag moves (the record of what we pushed).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TypeVar

from reconciler.model import Digest, Index, Manifest
from reconciler.model.registry import registry_key
from reconciler.ops.parallel import ItemFailed, run_bounded
from reconciler.ops.transfer.interface import AnyManifest
from reconciler.registry.protocol import PushTarget

T = TypeVar("T")


def _bounded(fn: Callable[[Digest], T], items: list[Digest], jobs: int) -> list[tuple[Digest, T]]:
    """``run_bounded``, raising the request's own error (the walk words it)."""
    try:
        return run_bounded(fn, items, jobs=jobs)
    except ItemFailed as failed:
        raise failed.error from None


class MountIndex:
    """Blobs known to be in repositories of a registry (``model.registry.registry_key``), so a
    push to another repository there mounts them instead of uploading. Filled from what
    we pushed before (the caller seeds it) and from each sink's blobs as it goes.
    Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._where: dict[tuple[str, Digest], str] = {}

    def add(self, base: str, name: str, digests: Iterable[Digest]) -> None:
        with self._lock:
            for d in digests:
                self._where.setdefault((base, d), name)

    def find(self, base: str, digest: Digest, *, not_in: str) -> str | None:
        with self._lock:
            name = self._where.get((base, digest))
        return name if name is not None and name != not_in else None


class RegistrySink:
    """``ContentSink`` into repository ``name`` of a ``PushTarget``; ``tags`` (tag ->
    manifest) are PUT by ``commit`` after all content is there."""

    def __init__(self, target: PushTarget, name: str, *, jobs: int = 6, mounts: MountIndex | None = None,
                 tags: Mapping[str, AnyManifest] | None = None,
                 on_tag: Callable[[str, AnyManifest], None] | None = None,
                 read: Callable[[Digest], AnyManifest] | None = None) -> None:
        self.target, self.name, self.jobs = target, name, max(1, jobs)
        self.read = read
        self.mounts = mounts
        self.tags = dict(tags or {})
        self.on_tag = on_tag
        #: what the target held already, what was mounted, uploaded (blobs), put (manifests)
        self.present: set[Digest] = set()
        self.mounted: set[Digest] = set()
        self.uploaded: dict[Digest, int] = {}
        self.put: list[Digest] = []
        self.tagged: list[str] = []
        #: referrers the registry said it lists under their subject (``OCI-Subject``: the referrers API)
        self.listed: set[Digest] = set()
        self._lock = threading.Lock()
        #: the registry, as push records and the mount index name it
        self._key = registry_key(target.base)

    def manifests_held(self, digests: Iterable[Digest]) -> set[Digest]:
        wanted = [d for d in digests if not self._lacks(d)]
        found = _bounded(lambda d: self.target.manifest_exists(self.name, str(d)) == d, wanted, self.jobs)
        return {d for d, held in found if held}

    def _lacks(self, digest: Digest) -> bool:
        """Known absent without a request: an image manifest with a blob the target lacks."""
        m = self.read(digest) if self.read is not None else None
        return isinstance(m, Manifest) and any(self.target.blob_known(self.name, b.digest) is False for b in m.blobs())

    def manifest_read(self, digest: Digest) -> AnyManifest | None:
        return None  # the registry holds the closure of what it holds: not walked below

    def blobs_missing(self, digests: Iterable[Digest]) -> set[Digest]:
        base = self._key

        def missing(d: Digest) -> bool:
            if self.target.blob_exists(self.name, d):
                with self._lock:
                    self.present.add(d)
                return False
            other = self.mounts.find(base, d, not_in=self.name) if self.mounts is not None else None
            if other is not None and self.target.blob_mount(self.name, d, other):
                with self._lock:
                    self.mounted.add(d)
                return False
            return True

        found = _bounded(missing, list(digests), self.jobs)
        if self.mounts is not None:
            self.mounts.add(base, self.name, [d for d, lacks in found if not lacks])
        return {d for d, lacks in found if lacks}

    def blob_put(self, digest: Digest, chunks: Iterator[bytes], *, size: int | None, where: str) -> int:
        n = self.target.blob_upload(self.name, digest, chunks, size)
        with self._lock:
            self.uploaded[digest] = n
        if self.mounts is not None:
            self.mounts.add(self._key, self.name, [digest])
        return n

    def manifests_put(self, manifests: Sequence[AnyManifest]) -> None:
        # a manifest a tag will name is put by that tag in ``commit`` (one request, not two),
        # unless an index put here lists it: children go before the indexes listing them
        listed = {c for m in manifests if isinstance(m, Index) for c in m.children()}
        tagged = {m.digest for m in self.tags.values()} - listed
        for m in manifests:  # children first, as the walk hands them (a registry checks references)
            if m.digest not in tagged:
                if self.target.manifest_put(self.name, str(m.digest), m) is not None:
                    self.listed.add(m.digest)
                self.put.append(m.digest)

    def commit(self) -> None:
        for tag, m in sorted(self.tags.items()):
            if self.on_tag is not None:
                self.on_tag(tag, m)
            self.target.manifest_put(self.name, tag, m)
            self.tagged.append(tag)
