"""An in-memory ``UpstreamSource`` for unit tests of the sync operation.

It behaves like a distribution registry seen through the client: paged tag lists
(one request counted per page), HEAD with or without a digest, GET by tag or digest
(verified when by digest), streamed blob bodies. Requests are counted in ``stats`` by
kind (``tags``, ``head``, ``manifest_get``, ``blob_get``), the way the real client counts.
Faults are injected by editing ``corrupt_blobs`` or ``after_list``.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TypeVar

from reconciler.errors import RegistryError
from reconciler.model import Descriptor, Digest, Index, Manifest
from reconciler.registry.protocol import ManifestHead, RequestStats
from tests.support.imagegen import Image

T = TypeVar("T")


@dataclass
class FakeRepo:
    tags: dict[str, Digest] = field(default_factory=dict)


class FakeUpstream:
    def __init__(self, *, page_size: int = 100, send_digest: bool = True, url: str = "http://fake.invalid") -> None:
        self.repos: dict[str, FakeRepo] = {}
        self.manifests: dict[Digest, Manifest | Index] = {}
        self.blobs: dict[Digest, bytes] = {}
        self.page_size = page_size
        self.send_digest = send_digest
        self.stats = RequestStats()
        self.corrupt_blobs: dict[Digest, bytes] = {}
        #: called after a tag list is served (e.g. to delete a tag "meanwhile")
        self.after_list: Callable[[str], None] | None = None
        self.blob_log: list[Digest] = []
        self._lock = threading.Lock()
        self.config = type("Cfg", (), {"url": url})()

    # -- filling ------------------------------------------------------------------
    def push(self, name: str, image: Image, *tags: str) -> Digest:
        repo = self.repos.setdefault(name, FakeRepo())
        for m in image.all_manifests():
            self.manifests[m.digest] = m
        for d, data in image.all_blobs().items():
            self.blobs[Digest.parse(d)] = data
        for t in tags:
            repo.tags[t] = image.digest
        return image.digest

    def delete_tag(self, name: str, tag: str) -> None:
        del self.repos[name].tags[tag]

    def _count(self, kind: str) -> None:
        with self._lock:
            self.stats.add(kind)

    def _url(self, name: str, path: str) -> str:
        return f"{self.config.url}/v2/{name}/{path}"

    def _repo(self, name: str, method: str, path: str) -> FakeRepo:
        if name not in self.repos:
            raise RegistryError(method, self._url(name, path), 404, codes=["NAME_UNKNOWN"])
        return self.repos[name]

    # -- UpstreamSource -----------------------------------------------------------
    def tag_list(self, name: str) -> list[str]:
        repo = self._repo(name, "GET", "tags/list")
        tags = sorted(repo.tags)
        pages = max(1, -(-len(tags) // self.page_size))
        for _ in range(pages):
            self._count("tags")
        if self.after_list:
            self.after_list(name)
        return tags

    def _resolve(self, name: str, reference: str) -> Digest | None:
        repo = self._repo(name, "HEAD", f"manifests/{reference}")
        if reference.startswith("sha256:"):
            d = Digest.parse(reference)
            return d if d in self.manifests else None
        return repo.tags.get(reference)

    def manifest_head(self, name: str, reference: str) -> ManifestHead | None:
        self._count("head")
        d = self._resolve(name, reference)
        if d is None:
            return None
        m = self.manifests[d]
        return ManifestHead(d if self.send_digest else None, m.media_type, len(m.raw))

    def manifest_get(self, name: str, reference: str) -> Manifest | Index:
        self._count("manifest_get")
        d = self._resolve(name, reference)
        if d is None:
            raise RegistryError("GET", self._url(name, f"manifests/{reference}"), 404, codes=["MANIFEST_UNKNOWN"])
        return self.manifests[d]

    def referrers(self, name: str, digest: Digest) -> list[Descriptor] | None:
        """None: like the distribution registry, no referrers API."""
        self._count("referrers")
        return None

    def blob_fetch(self, name: str, digest: Digest, sink: Callable[[Iterator[bytes]], T]) -> T:
        self._count("blob_get")
        self._repo(name, "GET", f"blobs/{digest}")
        with self._lock:
            self.blob_log.append(digest)
        if digest not in self.blobs:
            raise RegistryError("GET", self._url(name, f"blobs/{digest}"), 404, codes=["BLOB_UNKNOWN"])
        data = self.corrupt_blobs.get(digest, self.blobs[digest])
        with self._lock:
            self.stats.bytes_received += len(data)
        return sink(iter([data[i:i + 1000] for i in range(0, len(data), 1000)] or [b""]))

    def close(self) -> None:
        pass



class NoUpstream:
    """An ``UpstreamSource`` for tests whose fetcher or resolver is faked too, so nothing is
    read from it: each read fails the test, naming the call. Subclass it and override the
    calls a test does expect (``manifest_get`` for a refresh that parses a manifest)."""

    def __init__(self) -> None:
        self.stats = RequestStats()

    def _unexpected(self, call: str) -> AssertionError:
        return AssertionError(f"{type(self).__name__}.{call}: this test's upstream is never read")

    def tag_list(self, name: str) -> list[str]:
        raise self._unexpected("tag_list")

    def manifest_head(self, name: str, reference: str) -> ManifestHead | None:
        raise self._unexpected("manifest_head")

    def manifest_get(self, name: str, reference: str) -> Manifest | Index:
        raise self._unexpected("manifest_get")

    def blob_fetch(self, name: str, digest: Digest, sink: Callable[[Iterator[bytes]], T]) -> T:
        raise self._unexpected("blob_fetch")

    def referrers(self, name: str, digest: Digest) -> list[Descriptor] | None:
        raise self._unexpected("referrers")

    def close(self) -> None:
        pass
