"""One ``RegistryClient`` shared by every repository of a plan or apply.

A plan over twenty repositories of one registry used to make twenty clients: twenty
``/v2/`` pings, twenty connection pools, twenty TCP handshakes. ``SharedClients`` keeps
one client per ``RegistryConfig`` for the duration of a plan or apply and hands out
``BorrowedClient`` views of it:

* ``close()`` on a view does nothing (the owner closes the clients, once, at the end), so
  refresh and apply code keep their "close what you opened" shape;
* every call holds one of the client's ``max_concurrency`` slots, so the registry's limit
  is honoured across all repositories running at once, not per repository (the
  client's connection pool has as many connections as slots, so none is ever
  discarded);
* each view counts the requests made through it (pings and token fetches included) in
  its own ``stats``, so per-repository request counts stay exact while another
  repository uses the same client from other threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Self, TypeVar

from reconciler.model import Descriptor, Digest, Index, Manifest
from reconciler.model.registry import RegistryConfig
from reconciler.registry.client import RegistryClient
from reconciler.registry.protocol import ManifestHead, RequestStats

T = TypeVar("T")


class BorrowedClient:
    """A view of a shared ``RegistryClient`` (an ``UpstreamSource``) with its own request
    counts; ``close()`` is a no-op."""

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self.config = client.config
        self.stats = RequestStats()

    def _call(self, fn: Callable[[], T]) -> T:
        with self.client.slots, self.client.counting(self.stats):
            return fn()

    def tag_list(self, name: str) -> list[str]:
        return self._call(lambda: self.client.tag_list(name))

    def manifest_head(self, name: str, reference: str) -> ManifestHead | None:
        return self._call(lambda: self.client.manifest_head(name, reference))

    def manifest_get(self, name: str, reference: str) -> Manifest | Index:
        return self._call(lambda: self.client.manifest_get(name, reference))

    def blob_fetch(self, name: str, digest: Digest, sink: Callable[[Iterator[bytes]], T]) -> T:
        return self._call(lambda: self.client.blob_fetch(name, digest, sink))

    def referrers(self, name: str, digest: Digest) -> list[Descriptor] | None:
        self.client.await_referrers_probe()  # holding no slot while another repository probes
        return self._call(lambda: self.client.referrers(name, digest))

    def close(self) -> None:
        """Nothing: the client belongs to the ``SharedClients`` that lent it."""


class SharedClients:
    """One client per registry configuration, created on first use, closed by ``close()``.
    ``factory`` makes the clients (tests inject options such as a fast retry policy)."""

    def __init__(self, factory: Callable[[RegistryConfig], RegistryClient] = RegistryClient) -> None:
        self._factory = factory
        self._clients: dict[RegistryConfig, RegistryClient] = {}
        self._lock = threading.Lock()

    def borrow(self, config: RegistryConfig) -> BorrowedClient:
        with self._lock:
            client = self._clients.get(config)
            if client is None:
                client = self._clients[config] = self._factory(config)
        return BorrowedClient(client)

    @property
    def clients(self) -> dict[RegistryConfig, RegistryClient]:
        return dict(self._clients)

    def close(self) -> None:
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
