"""Prometheus metrics of ``reconciler serve`` (store mode and Crane mode), at ``/metrics``.

Through the ``prometheus_client`` library: requests by route, method and status, body
bytes sent by route, and a latency histogram by route; in store mode also the published
repositories and their tags, counted from the store when scraped. Routes are a small
fixed set worked out from the path (``manifest``, ``blob``, ``tags``, ``catalog`` ...), never
the repository name, so the number of series stays bounded and no name leaks: that is
why ``/metrics`` needs no credentials, like ``/healthz``.

gunicorn runs several worker processes, each with its own counters. ``reconciler serve``
therefore runs the library's multiprocess mode: the master sets ``PROMETHEUS_MULTIPROC_DIR``
to a fresh folder before the workers fork (``api_serve._metrics_folder``), every worker writes
its values to files there, and a scrape, whichever worker answers it, sums them all
(``MultiProcessCollector``). Without that variable (tests calling the app in-process) the
values live in this object's own registry.
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest, values
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector

from reconciler.server.httpio import Response
from reconciler.store.roles.read import ReadView

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
PATH = "/metrics"
#: request latency buckets, seconds: manifests and HEADs answer in milliseconds, blobs take longer
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0)

_V2 = re.compile(r"^/v2/.+/(?:(?P<kind>manifests|blobs|referrers)/(?P<ref>[^/]+)|(?P<tags>tags/list))$")


def route_of(path: str) -> str:
    """The route label of a request path (a fixed, small set)."""
    if path in ("/v2", "/v2/"):
        return "base"
    if path == "/v2/_catalog":
        return "catalog"
    if path.startswith("/v2/"):
        if "/blobs/uploads" in path:
            return "upload"
        m = _V2.match(path)
        if m is None:
            return "other"
        if m["tags"]:
            return "tags"
        return {"manifests": "manifest", "blobs": "blob", "referrers": "referrers"}[m["kind"]]
    for prefix, name in (("/v1", "v1"), ("/ui", "ui"), ("/crane", "crane")):
        if path == prefix or path.startswith(prefix + "/"):
            return name
    if path in (PATH, "/healthz", "/readyz"):
        return path[1:]
    return "other"


class _Served(Collector):
    """Published repositories and their tags, read from the store at scrape time. Tag
    counts are cached by (repository, version): a version never changes."""

    def __init__(self, store: Callable[[], ReadView]) -> None:
        self._store = store
        self._tags: dict[tuple[str, int], int] = {}
        self._lock = threading.Lock()

    def collect(self) -> Iterator[Metric]:
        store = self._store()
        pubs = store.publication_list()
        repos = GaugeMetricFamily("reconciler_served_repositories", "Published repository names, by protection",
                                  labels=["protected"])
        for flag in (False, True):
            repos.add_metric([str(flag).lower()], sum(1 for p in pubs if p.protected is flag))
        tags = GaugeMetricFamily("reconciler_served_tags", "Tags of all published repository versions")
        total = 0
        with self._lock:
            live = {(p.repo_id, p.version) for p in pubs}
            for key in live - self._tags.keys():
                self._tags[key] = len(store.version_tag_names(*key))
            for key in self._tags.keys() - live:
                del self._tags[key]
            total = sum(self._tags[k] for k in live)
        tags.add_metric([], total)
        yield repos
        yield tags


class ServerMetrics:
    """The request metrics of one server process; ``served`` (store mode) adds the
    published repositories and tags."""

    def __init__(self, store: Callable[[], ReadView] | None = None) -> None:
        self.registry = CollectorRegistry()
        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        if self.multiprocess and values.ValueClass is values.MutexValue:
            # the library picks its value store when first imported; serve sets the variable
            # before that, but a caller that imported it earlier must not silently lose the sums
            values.ValueClass = values.get_value_class()  # type: ignore[no-untyped-call]
        self.requests = Counter("reconciler_http_requests", "HTTP requests answered, by route, method and status",
                                ["route", "method", "status"], registry=self.registry)
        self.bytes = Counter("reconciler_http_response_bytes", "Response body bytes sent, by route", ["route"],
                             registry=self.registry)
        self.latency = Histogram("reconciler_http_request_duration_seconds",
                                 "Seconds from the request to the last body byte, by route", ["route"],
                                 buckets=BUCKETS, registry=self.registry)
        #: (route, method, status) -> its request counter, byte counter and latency histogram
        self._series: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._served = CollectorRegistry(auto_describe=True)
        if store is not None:
            self._served.register(_Served(store))

    def observe(self, path: str, method: str, status: int, size: int, seconds: float) -> None:
        route = route_of(path)
        method = method if method in ("GET", "HEAD") else "other"
        key = (route, method, status)
        series = self._series.get(key)
        if series is None:  # the library's labels() validates and locks: once per combination
            series = self._series[key] = (self.requests.labels(route, method, str(status)),
                                          self.bytes.labels(route), self.latency.labels(route))
        series[0].inc()
        if size:
            series[1].inc(size)
        series[2].observe(seconds)

    def exposition(self) -> bytes:
        """The text format of every worker's values (multiprocess mode) or this one's."""
        if self.multiprocess:
            merged = CollectorRegistry()
            MultiProcessCollector(merged)  # type: ignore[no-untyped-call]
            text = generate_latest(merged)
        else:
            text = generate_latest(self.registry)
        return text + generate_latest(self._served)

    def response(self) -> Response:
        body = self.exposition()
        return Response(200, {"Content-Type": CONTENT_TYPE_LATEST, "Content-Length": str(len(body)),
                              "Cache-Control": "no-store"}, body)
