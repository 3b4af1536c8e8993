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

What real registries do that the spec does not promise, and what the client does about
it (for the rest of the run, per client, i.e. per registry; docs/reliability.md,
"Upstream quirks"):

* a manifest HEAD answered 404, 403, 405 or 501 (Nexus 404s HEADs that GET answers; old
  distribution behind token auth 405s them) is confirmed with a GET before anyone is
  told a tag is gone; when the GET finds the manifest, HEAD is not trusted again and
  every later ``manifest_head`` is a GET;
* a HEAD without ``Docker-Content-Digest`` (optional in the spec) is answered by a GET,
  and every later ``manifest_head`` is a GET straight away (one request, not two);
* a rate limit whose ``Retry-After`` is longer than retries wait fails at once
  (``RateLimited``, naming when it resets), and so does every later request until then;
* a tag-list page size (``n``) the registry refuses (``PAGINATION_NUMBER_INVALID``, or
  a 400 about ``n``) is retried smaller, then without ``n``;
* a 404 to ``GET /v2/<name>/referrers/<digest>`` means the registry has no referrers API
  (OCI distribution 1.1: one that has it never answers 404 there), so ``referrers`` asks
  no more and answers None for every repository: one probe per registry, not one per
  repository. Until the first answer settles it, probes go one at a time.
"""

from __future__ import annotations

import functools
import logging
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any, Self, TypeVar

import requests
import urllib3

from reconciler.errors import DigestInvalid, DigestMismatch, ManifestInvalid, RateLimited, RegistryError
from reconciler.model import Descriptor, Digest, Index, Manifest, VerifiedStream, jsonsafe, parse_manifest
from reconciler.model.manifest import MAX_MANIFEST_BYTES
from reconciler.model.mediatypes import ACCEPT_ALL, OCI_INDEX
from reconciler.model.reference import normalize_upstream_name
from reconciler.model.registry import RegistryConfig
from reconciler.registry.auth import parse_www_authenticate, repository_scope
from reconciler.registry.protocol import ManifestHead, RequestStats
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
#: page sizes tried, in turn, when a registry refuses ``n`` (None: no ``n`` at all);
#: Quay and GCR cap pages at 100, some registries refuse ``n`` whatever it is
SMALLER_TAG_PAGES = (100, None)
BLOB_CHUNK = 1024 * 1024
#: HEAD answers a GET must confirm before a tag counts as gone (or the HEAD as an error)
DOUBTFUL_HEAD = (403, 404, 405, 501)


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
        #: how the ping sent ahead failed, raised once by the next ping instead of asking again
        self._ahead_failure: Exception | None = None
        self._session = AuthSession(config, self._count, env=env, timeout=timeout)
        self.base = self._session.base
        #: why manifest HEADs are not used (any more) in this run, or None while they are
        self.head_distrusted: str | None = None
        #: until one HEAD answer has been settled, HEADs go one at a time: otherwise a
        #: refresh sends every tag's HEAD in parallel before learning that HEAD is useless here
        self._head_settled = False
        self._head_probe = threading.Lock()
        #: a rate limit we were told to wait out, for every request until it resets
        self._limited: RateLimited | None = None
        #: whether the registry has the referrers API: None until an answer settled it
        self.referrers_api: bool | None = None
        self._referrers_probe = threading.Lock()

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
        self._retry(self._ping_attempt, f"GET {self.base}/v2/")
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

    def ensure_pinged(self) -> None:
        """Ping unless that is done (one attempt; ``registry.shared`` sends it ahead)."""
        # one attempt: every caller runs inside its own retry loop, and retrying here as
        # well multiplied the waits (5 x 5 attempts against a dead upstream)
        if not self._pinged:
            self._ping_once(ahead=False)

    def ping_ahead(self) -> None:
        """``ensure_pinged`` sent ahead of any request (``registry.shared``). A failure is
        kept, and the first request's ping raises it instead of pinging again: the attempt
        made ahead is that request's first, so its retry loop does not wait out a stalled
        registry once more than it would have without the ping ahead."""
        if not self._pinged:
            self._ping_once(ahead=True)

    def _ping_once(self, *, ahead: bool) -> None:
        with self._ping_lock:
            if self._pinged:
                return
            failure, self._ahead_failure = self._ahead_failure, None
            if failure is not None:
                raise failure
            try:
                self._ping_attempt()
            except Exception as exc:
                if ahead:
                    self._ahead_failure = exc
                raise
            self._pinged = True

    def _send(self, method: str, url: str, *, kind: str, scope: str, headers: dict[str, str] | None = None,
              data: bytes | None = None) -> requests.Response:
        limited = self._limited
        if limited is not None and time.time() < limited.until:
            # the registry said when it lets us back in: asking before then only counts against us
            raise RateLimited(method, url, limited.status, until=limited.until, wait=limited.until - time.time(),
                              codes=limited.codes)
        self.ensure_pinged()
        return self._session.send(method, url, kind=kind, scope=scope, headers=headers, data=data)

    def _retry(self, fn: Callable[[], T], what: str) -> T:
        """``call_with_retry``, remembering a rate limit for the requests still to come."""
        try:
            return call_with_retry(self.retry, fn, what=what)
        except RateLimited as exc:
            self._limited = exc
            raise

    def _error(self, method: str, url: str, resp: requests.Response, *, what: str = "") -> RegistryError:
        return error_from_response(method, url, resp, what=what, anonymous=self._session.credentials is None)

    def tag_list(self, name: str) -> list[str]:
        """Every tag of ``name``, following ``Link: <...>; rel="next"`` pages. A page size
        the registry refuses is tried smaller, then left out (and remembered)."""
        name, url, scope = self._url(name, "tags/list")
        while True:
            size = self.tag_page_size
            try:
                return self._tag_pages(f"{url}?n={size}" if size else url, scope)
            except RegistryError as exc:
                if not size or not _page_size_refused(exc):
                    raise
                smaller = next((n for n in SMALLER_TAG_PAGES if n is None or n < size), None)
                log.warning("%s refused a tag-list page size of %d (%s); asking for %s", self.base, size,
                            exc.message, f"{smaller} tags a page" if smaller else "pages of the registry's size")
                self.tag_page_size = smaller

    def _tag_pages(self, first: str, scope: str) -> list[str]:
        next_url: str | None = first
        tags: list[str] = []
        seen: set[str] = set()
        while next_url is not None:
            if next_url in seen or len(seen) >= MAX_TAG_PAGES:
                raise RegistryError("GET", next_url, 200, detail="tag list pagination loops or never ends",
                                    temporary=False)
            seen.add(next_url)
            doc, link = self._retry(functools.partial(self._get_json, next_url, "tags", scope), f"GET {next_url}")
            page = doc.get("tags") if isinstance(doc, dict) else None
            tags.extend(t for t in (page or []) if isinstance(t, str))
            target = parse_link_next(link)
            next_url = resolve_link(self.base, target) if target else None
        return list(dict.fromkeys(tags))

    def _get_json(self, url: str, kind: str, scope: str) -> tuple[Any, str | None]:
        resp = self._send("GET", url, kind=kind, scope=scope)
        with released(resp):
            if resp.status_code != 200:
                raise self._error("GET", url, resp)
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
        """The digest of a tag or digest reference; None when it does not exist.

        Normally one HEAD. A HEAD answer that may be a quirk (404, 403, 405, 501, or 200
        without ``Docker-Content-Digest``) is settled by a GET, whose manifest comes back
        in ``ManifestHead.manifest``; once a GET contradicts a HEAD, or a HEAD lacks the
        digest, HEAD is not used again by this client (see the module docstring)."""
        if not self._head_settled:
            with self._head_probe:
                # HEADs that queued here while the first one was out must not go one at a
                # time once it settled: across 50 ms that serialised a third of a refresh
                if not self._head_settled:
                    return self._manifest_head(name, reference)
        return self._manifest_head(name, reference)

    def _manifest_head(self, name: str, reference: str) -> ManifestHead | None:
        if self.head_distrusted is not None:
            return self._head_by_get(name, reference)
        normalized, url, scope = self._url(name, f"manifests/{reference}")

        def attempt() -> ManifestHead | int:
            resp = self._send("HEAD", url, kind="manifest_head", scope=scope, headers={"Accept": ACCEPT_ALL})
            with released(resp):
                if resp.status_code in DOUBTFUL_HEAD:
                    return resp.status_code  # a GET decides (below)
                if resp.status_code != 200:
                    raise self._error("HEAD", url, resp)
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

        answer = self._retry(attempt, f"HEAD {url}")
        if isinstance(answer, ManifestHead) and answer.digest is not None:
            self._head_settled = True  # HEAD works here: the next ones may run in parallel
            return answer
        head = self._head_by_get(name, reference)
        if answer == 404 and head is None:
            return None  # HEAD and GET agree: it is gone (and nothing is settled yet)
        if isinstance(answer, ManifestHead):
            why = "its manifest HEADs carry no Docker-Content-Digest"
        elif head is None:
            why = f"it answers manifest HEADs with HTTP {answer}"
        else:
            why = f"it answered a manifest HEAD with HTTP {answer} where a GET found the manifest"
        self._distrust_head(why)
        return head

    def _head_by_get(self, name: str, reference: str) -> ManifestHead | None:
        """What a HEAD should have said, from a GET (None on 404)."""
        try:
            m = self.manifest_get(name, reference)
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise
        return ManifestHead(m.digest, m.media_type, len(m.raw), manifest=m)

    def _distrust_head(self, why: str) -> None:
        if self.head_distrusted is None:
            self.head_distrusted = why
            log.warning("%s: %s; using GET instead of HEAD for the rest of this run", self.base, why)
        self._head_settled = True

    def referrers(self, name: str, digest: Digest) -> list[Descriptor] | None:
        """``GET /v2/<name>/referrers/<digest>``, every page (``Link``); None when the
        registry has no referrers API: its first 404 says so (one that has the API answers
        200 for any digest), and after it no more requests are sent (module docstring)."""
        if self.referrers_api is None:
            with self._referrers_probe:
                # the first probe goes alone: across twenty repositories in flight, the others
                # would each send a request whose answer the first one is about to give
                if self.referrers_api is None:
                    return self._referrers(name, digest)
        return self._referrers(name, digest) if self.referrers_api else None

    def await_referrers_probe(self) -> None:
        """Return once no referrers probe is out (at once when the answer is known). A
        shared client's callers wait here before they take a slot, so no slot idles while
        they wait for another repository's probe (``registry.shared``)."""
        if self.referrers_api is None:
            with self._referrers_probe:
                pass

    def _referrers(self, name: str, digest: Digest) -> list[Descriptor] | None:
        name, url, scope = self._url(name, f"referrers/{digest}")
        out: list[Descriptor] = []
        next_url: str | None = url
        seen: set[str] = set()
        while next_url is not None:
            if next_url in seen or len(seen) >= MAX_TAG_PAGES:
                raise RegistryError("GET", next_url, 200, detail="referrers pagination loops or never ends",
                                    temporary=False)
            seen.add(next_url)
            page = self._retry(functools.partial(self._referrers_page, next_url, scope), f"GET {next_url}")
            if page is None:
                if self.referrers_api is None:
                    log.info("%s has no referrers API (GET %s: 404): the referrers tag schema for the rest "
                             "of this run", self.base, next_url)
                    self.referrers_api = False
                return None
            self.referrers_api = True
            doc, link = page
            entries = doc.get("manifests") if isinstance(doc, dict) else None
            if not isinstance(entries, list):
                raise RegistryError("GET", next_url, 200, detail="the referrers answer is not an image index",
                                    temporary=False)
            try:
                out += [Descriptor.from_json(e, where=f"GET {next_url}: manifests[{i}]") for i, e in enumerate(entries)]
            except ManifestInvalid as exc:
                raise RegistryError("GET", next_url, 200, detail=exc.message, temporary=False) from exc
            target = parse_link_next(link)
            next_url = resolve_link(self.base, target) if target else None
        return out

    def _referrers_page(self, url: str, scope: str) -> tuple[Any, str | None] | None:
        resp = self._send("GET", url, kind="referrers", scope=scope, headers={"Accept": OCI_INDEX})
        with released(resp):
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise self._error("GET", url, resp)
            body = self._read_body(resp, url, MAX_MANIFEST_BYTES)
        try:
            return jsonsafe.loads(body), resp.headers.get("Link")
        except ValueError as exc:
            raise RegistryError("GET", url, 200, detail=f"invalid JSON: {exc}", temporary=False) from exc

    def manifest_get(self, name: str, reference: str) -> Manifest | Index:
        """GET and parse a manifest or index; by digest, the bytes must hash to it."""
        name, url, scope = self._url(name, f"manifests/{reference}")
        expected = Digest.parse(reference) if ":" in reference else None

        def attempt() -> Manifest | Index:
            resp = self._send("GET", url, kind="manifest_get", scope=scope, headers={"Accept": ACCEPT_ALL})
            with released(resp):
                if resp.status_code != 200:
                    raise self._error("GET", url, resp)
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

        return self._retry(attempt, f"GET {url}")

    def blob_fetch(self, name: str, digest: Digest, sink: Callable[[Iterator[bytes]], T]) -> T:
        """Stream a blob into ``sink`` chunk by chunk (never whole in memory). The stream
        raises ``DigestMismatch`` at its end when the bytes do not hash to ``digest``, and a
        temporary ``RegistryError`` when cut short; the latter is retried with a new stream."""
        name, url, scope = self._url(name, f"blobs/{digest}")

        def attempt() -> T:
            resp = self._send("GET", url, kind="blob_get", scope=scope, headers={"Accept-Encoding": "identity"})
            with released(resp):
                if resp.status_code != 200:
                    raise self._error("GET", url, resp)
                return sink(VerifiedStream(self._verified_chunks(resp, url, digest), digest))

        return self._retry(attempt, f"GET {url}")

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


def _page_size_refused(exc: RegistryError) -> bool:
    """A tag-list answer that says the ``n`` we sent is the problem."""
    if "PAGINATION_NUMBER_INVALID" in exc.codes:
        return True
    return exc.status == 400 and bool(re.search(r"\bn\b|page size|pagination|limit", exc.detail, re.IGNORECASE))
