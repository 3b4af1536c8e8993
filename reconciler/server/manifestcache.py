"""Manifest bytes kept in each worker process, least recently used first out, bounded by bytes.

A manifest is immutable under its digest, so its bytes never go stale: the cache only
saves the read (on a PostgreSQL store a billed S3 GET per pull, and a pull that fails when
S3 does). Whether a name may see a digest is still decided per request from the store;
the cache answers only "what are the bytes of this digest".
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable

from reconciler.model import Digest

#: default bytes of manifests each worker keeps (``serve --manifest-cache``, in MiB)
DEFAULT_BYTES = 64 * 1024 * 1024


class ManifestCache:
    """``(media type, bytes)`` by digest, at most ``max_bytes`` of bytes; 0 disables it."""

    def __init__(self, max_bytes: int = DEFAULT_BYTES) -> None:
        self.max_bytes = max(0, max_bytes)
        self._entries: OrderedDict[Digest, tuple[str, bytes]] = OrderedDict()
        self._size = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def size(self) -> int:
        return self._size

    def get(self, digest: Digest, load: Callable[[Digest], tuple[str, bytes]]) -> tuple[str, bytes]:
        """The cached entry, else ``load(digest)`` (outside the lock: a slow read blocks
        no other request), kept if it fits."""
        with self._lock:
            entry = self._entries.get(digest)
            if entry is not None:
                self._entries.move_to_end(digest)
                self.hits += 1
                return entry
            self.misses += 1
        entry = load(digest)
        self._put(digest, entry)
        return entry

    def _put(self, digest: Digest, entry: tuple[str, bytes]) -> None:
        size = len(entry[1])
        if size > self.max_bytes // 4:  # one huge manifest must not flush everything else
            return
        with self._lock:
            if digest in self._entries:
                return
            self._entries[digest] = entry
            self._size += size
            while self._size > self.max_bytes:
                _, (_, raw) = self._entries.popitem(last=False)
                self._size -= len(raw)
