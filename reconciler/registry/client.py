"""``RegistryClient``: the pull side of the Docker Registry HTTP API V2 / OCI distribution
spec, implementing ``UpstreamSource`` for one upstream registry.

::

    client = RegistryClient(RegistryConfig("https://registry-1.docker.io"))
    tags = client.tag_list("library/busybox")           # follows Link pagination
    head = client.manifest_head("library/busybox", "latest")   # None when absent
    m = client.manifest_get("library/busybox", str(head.digest))  # verified by digest
    client.blob_fetch("library/busybox", m.layers[0].digest, store_sink)
    client.close()

Every request is counted in ``client.stats`` by kind (``ping``, ``token``, ``tags``,
``manifest_head``, ``manifest_get``, ``blob_get``, ``redirect``). Temporary failures are
retried per ``RetryPolicy``; errors are ``RegistryError`` (or ``DigestMismatch``,
``ManifestInvalid``) with the URL redacted. Safe to share between threads.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Self, TypeVar

import requests
import urllib3

from reconciler.errors import DigestInvalid, DigestMismatch, ManifestInvalid, RegistryError
from reconciler.model import Digest, Index, Manifest, VerifiedStream, jsonsafe, parse_manifest
from reconciler.model.manifest import MAX_MANIFEST_BYTES
from reconciler.model.mediatypes import ACCEPT_ALL
from reconciler.model.reference import normalize_upstream_name
from reconciler.registry.auth import parse_www_authenticate, repository_scope
from reconciler.registry.protocol import ManifestHead, RegistryConfig, RequestStats
from reconciler.registry.retry import RetryPolicy, call_with_retry
from reconciler.registry.session import AuthSession
from reconciler.registry.transport import (
    connection_error,
    error_from_response,
    media_type_of,
    parse_link_next,
    read_limited,
    released,
    resolve_link,
)

log = logging.getLogger(__name__)
T = TypeVar("T")

#: tag lists beyond this many bytes per page are refused (a runaway or hostile server)
MAX_TAG_PAGE_BYTES = 32 * 1024 * 1024
MAX_TAG_PAGES = 10_000
DEFAULT_TAG_PAGE_SIZE = 1000
BLOB_CHUNK = 1024 * 1024


class RegistryClient:
    """A pull client for one registry (``config.url``); one connection pool, sized to
    ``config.max_concurrency``. ``retry`` sets attempts and waits (tests inject ``sleep``;
    default: ``config.retries`` retries); ``timeout`` is (connect, read) seconds (default:
    10 s, ``config.timeout``); ``tag_page_size`` is the ``n`` sent with tag lists (None:
    let the registry decide)."""

    def __init__(self, config: RegistryConfig, *, retry: RetryPolicy | None = None,
                 env: Mapping[str, str] | None = None, tag_page_size: int | None = DEFAULT_TAG_PAGE_SIZE,
                 timeout: tuple[float, float] | None = None, chunk_size: int = BLOB_CHUNK) -> None:
        self.config = config
        self.stats = RequestStats()
        self.retry = retry or RetryPolicy(attempts=1 + max(0, config.retries))
        self.tag_page_size = tag_page_size
        self.chunk_size = chunk_size
        self._stats_lock = threading.Lock()
        # per-thread extra counts (``counting``): a borrowed view's own stats
        self._local = threading.local()
        #: callers that share this client hold one slot per call (``registry.shared``)
        self.slots = threading.BoundedSemaphore(max(1, config.max_concurrency))
        self._ping_lock = threading.Lock()
        self._pinged = False
        self._session = AuthSession(config, self._count, env=env, timeout=timeout)
        self.base = self._session.base

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._session.close()

    @contextmanager
    def counting(self, stats: RequestStats) -> Iterator[None]:
        """Also count, in ``stats``, the requests this thread makes until the block ends."""
        outer = getattr(self._local, "stats", None)
        self._local.stats = stats
        try:
            yield
        finally:
            self._local.stats = outer

    def _count(self, kind: str) -> None:
        extra: RequestStats | None = getattr(self._local, "stats", None)
        with self._stats_lock:
            self.stats.add(kind)
            if extra is not None:
                extra.add(kind)

    def _received(self, n: int) -> None:
        extra: RequestStats | None = getattr(self._local, "stats", None)
        with self._stats_lock:
            self.stats.bytes_received += n
            if extra is not None:
                extra.bytes_received += n

    def _url(self, name: str, tail: str) -> tuple[str, str, str]:
        """(normalized name, URL, pull scope) for ``/v2/<name>/<tail>``."""
        name = normalize_upstream_name(self.base, name)
        return name, f"{self.base}/v2/{name}/{tail}", repository_scope(name)

    # -- API -----------------------------------------------------------------------------

    def ping(self) -> None:
        """GET ``/v2/``: learn whether and how the registry wants authentication.
        200 and 401 are both fine; the version header is optional."""
        call_with_retry(self.retry, self._ping_attempt, what=f"GET {self.base}/v2/")
        self._pinged = True

    def _ping_attempt(self) -> None:
        url = f"{self.base}/v2/"
        # no credentials yet: the answer says which the registry wants; streamed, as only the
        # status and headers matter (a short body is drained for keep-alive, see ``released``)
        r = self._session.send_following("GET", url, {}, None, "ping", True)
        with released(r):
            if r.status_code == 401:
                self._session.learn(parse_www_authenticate(r.headers.get("WWW-Authenticate")))
            elif r.status_code != 200:
                raise error_from_response("GET", url, r, what="not a Docker Registry V2 / OCI distribution API")
            version = r.headers.get("Docker-Distribution-API-Version")
            if version and version != "registry/2.0":
                log.warning("%s says Docker-Distribution-API-Version %r", url, version)

    def _ensure_pinged(self) -> None:
        # one attempt: every caller runs inside its own retry loop, and retrying here as
        # well multiplied the waits (5 x 5 attempts against a dead upstream)
        if self._pinged:
            return
        with self._ping_lock:
            if not self._pinged:
                self._ping_attempt()
                self._pinged = True

    def _send(self, method: str, url: str, *, kind: str, scope: str, headers: dict[str, str] | None = None
              ) -> requests.Response:
        self._ensure_pinged()
        return self._session.send(method, url, kind=kind, scope=scope, headers=headers)

    def tag_list(self, name: str) -> list[str]:
        """Every tag of ``name``, following ``Link: <...>; rel="next"`` pages."""
        name, url, scope = self._url(name, "tags/list")
        next_url: str | None = f"{url}?n={self.tag_page_size}" if self.tag_page_size else url
        tags: list[str] = []
        seen: set[str] = set()
        while next_url is not None:
            if next_url in seen or len(seen) >= MAX_TAG_PAGES:
                raise RegistryError("GET", next_url, 200, detail="tag list pagination loops or never ends",
                                    temporary=False)
            seen.add(next_url)
            doc, link = call_with_retry(self.retry, functools.partial(self._get_json, next_url, "tags", scope),
                                        what=f"GET {next_url}")
            page = doc.get("tags") if isinstance(doc, dict) else None
            tags.extend(t for t in (page or []) if isinstance(t, str))
            target = parse_link_next(link)
            next_url = resolve_link(self.base, target) if target else None
        return list(dict.fromkeys(tags))

    def _get_json(self, url: str, kind: str, scope: str) -> tuple[Any, str | None]:
        resp = self._send("GET", url, kind=kind, scope=scope)
        with released(resp):
            if resp.status_code != 200:
                raise error_from_response("GET", url, resp)
            body = self._read_body(resp, url, MAX_TAG_PAGE_BYTES)
            try:
                return jsonsafe.loads(body), resp.headers.get("Link")
            except ValueError as exc:
                raise RegistryError("GET", url, 200, detail=f"invalid JSON: {exc}", temporary=False) from exc

    def _read_body(self, resp: requests.Response, url: str, limit: int) -> bytes:
        """The whole (small) body, or an error when it is too big or cut short."""
        data = read_limited(resp, "GET", url, limit)
        self._received(len(data))
        return data

    def manifest_head(self, name: str, reference: str) -> ManifestHead | None:
        """HEAD a tag or digest; None on 404. ``digest`` is None without Docker-Content-Digest."""
        name, url, scope = self._url(name, f"manifests/{reference}")

        def attempt() -> ManifestHead | None:
            resp = self._send("HEAD", url, kind="manifest_head", scope=scope, headers={"Accept": ACCEPT_ALL})
            with released(resp):
                if resp.status_code == 404:
                    return None
                if resp.status_code != 200:
                    raise error_from_response("HEAD", url, resp)
                digest = None
                header = resp.headers.get("Docker-Content-Digest")
                if header:
                    try:
                        digest = Digest.parse(header.strip())
                    except DigestInvalid:
                        log.warning("HEAD %s: ignoring invalid Docker-Content-Digest %r", url, header)
                length = resp.headers.get("Content-Length")
                size = int(length) if length and length.isdigit() else None
                return ManifestHead(digest, media_type_of(resp), size)

        return call_with_retry(self.retry, attempt, what=f"HEAD {url}")

    def manifest_get(self, name: str, reference: str) -> Manifest | Index:
        """GET and parse a manifest or index; by digest, the bytes must hash to it."""
        name, url, scope = self._url(name, f"manifests/{reference}")
        expected = Digest.parse(reference) if ":" in reference else None

        def attempt() -> Manifest | Index:
            resp = self._send("GET", url, kind="manifest_get", scope=scope, headers={"Accept": ACCEPT_ALL})
            with released(resp):
                if resp.status_code != 200:
                    raise error_from_response("GET", url, resp)
                raw = self._read_body(resp, url, MAX_MANIFEST_BYTES)
                media_type = media_type_of(resp)
            try:
                manifest = parse_manifest(raw, media_type)
            except ManifestInvalid as exc:
                raise ManifestInvalid(f"GET {resp.url or url}: {exc.message}", hint="the upstream manifest is "
                                      "malformed or of a type we do not support") from exc
            if expected is not None and manifest.digest != expected:
                raise DigestMismatch(str(expected), str(manifest.digest), where=f"GET {url}")
            return manifest

        return call_with_retry(self.retry, attempt, what=f"GET {url}")

    def blob_fetch(self, name: str, digest: Digest, sink: Callable[[Iterator[bytes]], T]) -> T:
        """Stream a blob into ``sink`` chunk by chunk (never whole in memory). The stream
        raises ``DigestMismatch`` at its end when the bytes do not hash to ``digest``, and a
        temporary ``RegistryError`` when cut short; the latter is retried with a new stream."""
        name, url, scope = self._url(name, f"blobs/{digest}")

        def attempt() -> T:
            resp = self._send("GET", url, kind="blob_get", scope=scope, headers={"Accept-Encoding": "identity"})
            with released(resp):
                if resp.status_code != 200:
                    raise error_from_response("GET", url, resp)
                return sink(VerifiedStream(self._verified_chunks(resp, url, digest), digest))

        return call_with_retry(self.retry, attempt, what=f"GET {url}")

    def _verified_chunks(self, resp: requests.Response, url: str, digest: Digest) -> Iterator[bytes]:
        hasher = digest.hasher()
        length = resp.headers.get("Content-Length")
        want = int(length) if length and length.isdigit() else None
        try:
            # raw bytes: a Content-Encoding on a blob must not change what we hash and store
            for chunk in resp.raw.stream(self.chunk_size, decode_content=False):
                if chunk:
                    hasher.update(chunk)
                    self._received(len(chunk))
                    yield chunk
        except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise connection_error("GET", url, exc) from exc
        if want is not None and hasher.size != want:
            raise RegistryError("GET", url, resp.status_code, temporary=True,
                                detail=f"blob body cut short: {hasher.size} of {want} bytes")
        actual = hasher.digest()
        if actual != digest:
            raise DigestMismatch(str(digest), str(actual), where=f"GET {url}")
