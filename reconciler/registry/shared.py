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
  repository uses the same client from other threads;
* ``connect_ahead`` sends a registry's ``/v2/`` ping on a thread of its own before
  anyone needs the client, so its round trips (two on a new connection) overlap what the
  plan does before its first request (importing the plan's modules, reading the store).
  The first view to make a call waits for it, if still out, and counts it as its own;
  if it failed, that failure is the first attempt of the view's call (which retries as
  always), so a stalled registry is not waited out once more than without the ping ahead.
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


class _PingAhead:
    """A registry's ping sent ahead (``SharedClients.connect_ahead``), counted apart
    until one view claims the count."""

    def __init__(self, client: RegistryClient) -> None:
        self.stats = RequestStats()
        self._claimed = False
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._ping, args=(client,), name="ping-ahead", daemon=True)
        self._thread.start()

    def _ping(self, client: RegistryClient) -> None:
        try:
            with client.counting(self.stats):
                client.ping_ahead()
        except Exception:  # a RegistryError, or anything else: see below
            # the first real request meets the failure as its first attempt, retries as
            # always and reports what fails; and a pool closed under this thread (a plan
            # that ended before any request) is no error of anybody's
            pass

    def claim(self, stats: RequestStats) -> None:
        """Wait for the ping (the caller's request would wait for it anyway) and add its
        count to ``stats``, the first time only."""
        if self._claimed:
            return
        self._thread.join()
        with self._lock:
            if not self._claimed:
                # added before the flag is set: a thread that sees the flag finds the sum done
                for kind, n in self.stats.counts.items():
                    stats.add(kind, n)
                stats.bytes_received += self.stats.bytes_received
                self._claimed = True


class BorrowedClient:
    """A view of a shared ``RegistryClient`` (an ``UpstreamSource``) with its own request
    counts; ``close()`` is a no-op."""

    def __init__(self, client: RegistryClient, ahead: _PingAhead | None = None) -> None:
        self.client = client
        self.config = client.config
        self.stats = RequestStats()
        self._ahead = ahead

    def _call(self, fn: Callable[[], T]) -> T:
        with self.client.slots, self.client.counting(self.stats):
            if self._ahead is not None:
                self._ahead.claim(self.stats)
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
        self._ahead: dict[RegistryConfig, _PingAhead] = {}
        self._lock = threading.Lock()

    def _client(self, config: RegistryConfig) -> RegistryClient:
        with self._lock:
            client = self._clients.get(config)
            if client is None:
                client = self._clients[config] = self._factory(config)
            return client

    def borrow(self, config: RegistryConfig) -> BorrowedClient:
        client = self._client(config)
        return BorrowedClient(client, self._ahead.get(config))

    def connect_ahead(self, config: RegistryConfig) -> None:
        """Ping ``config``'s registry now, on a thread of its own (module docstring). A
        failure here is not reported: the first real request meets it again."""
        client = self._client(config)
        with self._lock:
            if config not in self._ahead:
                self._ahead[config] = _PingAhead(client)

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
