"""The WSGI application: method check, routing, authentication, dispatch, errors.

Every request reads the publication (name -> repository, version) once and then asks
only about that immutable version, so a publish that lands mid-request cannot mix two
versions. The store is opened lazily on the first request, i.e. in each gunicorn worker
after the fork, never shared across processes, and opened again when it was replaced
(a store restored into place under a running server); with it, the worker's manifest
cache and object-storage guard (``content.py``). ``/healthz`` and ``/readyz``
(``health.py``) are answered before authentication.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconciler.model.repository import Publication
from reconciler.server import accesslog, health, v1api
from reconciler.server.access import AccessRules, Decision, decide
from reconciler.server.auth import REALM, Htpasswd, parse_basic
from reconciler.server.blobs import get_blob
from reconciler.server.content import Content
from reconciler.server.errors import RegistryHTTPError
from reconciler.server.guard import StorageGuard
from reconciler.server.httpio import Request, Response
from reconciler.server.listing import catalog, tags_list
from reconciler.server.logins import LoginGuard
from reconciler.server.manifestcache import DEFAULT_BYTES, ManifestCache
from reconciler.server.manifests import get_manifest
from reconciler.server.metrics import ServerMetrics
from reconciler.server.referrers import get_referrers
from reconciler.server.routing import Route, route
from reconciler.store.roles.read import ReadView

log = logging.getLogger(__name__)

API_VERSION = ("Docker-Distribution-API-Version", "registry/2.0")
_READ_METHODS = ("GET", "HEAD")


def _is_v1(path: str) -> bool:
    return path == "/v1" or path.startswith("/v1/")


class RegistryApp:
    """``RegistryApp(open_store, htpasswd=...)`` is a WSGI callable. ``access`` (with
    ``htpasswd``) limits each protected name to the users its rules grant it.
    ``blob_redirect`` (seconds) answers blob GETs with a redirect to a presigned URL
    valid that long, when the store's blob storage can make one. ``manifest_cache``:
    bytes of manifests this worker keeps (0: none); ``storage_slots``: requests that may
    wait on remote object storage at once (the worker's threads less one)."""

    def __init__(self, open_store: Callable[[], ReadView], *, htpasswd: Htpasswd | None = None,
                 access: AccessRules | None = None, realm: str = REALM,
                 blob_redirect: int | None = None, manifest_cache: int = DEFAULT_BYTES,
                 storage_slots: int = 3) -> None:
        self._open_store = open_store
        self.blob_redirect = blob_redirect
        self._store: ReadView | None = None
        self._content: Content | None = None
        self._retired: list[ReadView] = []
        self._store_lock = threading.Lock()
        self.manifest_cache = ManifestCache(manifest_cache)
        self.guard = StorageGuard(slots=storage_slots)
        self.htpasswd = htpasswd
        self.logins = LoginGuard(htpasswd) if htpasswd is not None else None
        self.access = access
        self.realm = realm
        #: /metrics (metrics.py): public, aggregates only; /ui/ (catalog/): the web catalog
        self.metrics = ServerMetrics(lambda: self.store)
        self._catalog: Any = None

    @property
    def store(self) -> ReadView:
        store = self._store
        if store is None or store.replaced():
            with self._store_lock:
                if self._store is None or self._store.replaced():
                    # a store restored into place: open the new one; the old one stays open
                    # (requests of other threads may still read it) until the app closes
                    old, self._store = self._store, self._open_store()
                    if old is not None:
                        log.warning("the store was replaced (restored?); opened it again")
                        self._retired.append(old)
                store = self._store
        return store

    @property
    def content(self) -> Content:
        store = self.store
        content = self._content
        if content is None or content.store is not store:  # first use, or a reopened store
            with self._store_lock:
                if self._content is None or self._content.store is not store:
                    self._content = Content(store, cache=self.manifest_cache, guard=self.guard)
                content = self._content
        return content

    def close(self) -> None:
        with self._store_lock:
            for old in [*self._retired, self._store]:
                if old is not None:
                    old.close()
            self._store, self._retired, self._content = None, [], None

    # -- WSGI -------------------------------------------------------------------------
    def __call__(self, environ: Mapping[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        req = Request.from_environ(environ)
        try:
            resp = self.handle(req)
        except RegistryHTTPError as exc:
            resp = error_response(exc)
        except Exception:  # noqa: BLE001 - a bug must not kill the worker; log it whole
            log.exception("internal error serving %s %s", req.method, req.path)
            resp = error_response(RegistryHTTPError("UNKNOWN", "internal server error"))
        if not _is_v1(req.path):  # the v2 API's header; v1 answers carry their own
            resp.headers[API_VERSION[0]] = API_VERSION[1]
        return accesslog.send_logged(req, resp, environ, start_response, started, self.metrics.observe)

    # -- dispatch -----------------------------------------------------------------------
    def handle(self, req: Request) -> Response:
        if req.path in health.PATHS:
            self._check_method(req)
            return health.healthz() if req.path == "/healthz" else health.readyz(lambda: self.content)
        if req.path == "/metrics":
            self._check_method(req)
            return self.metrics.response()
        if req.path == "/ui" or req.path.startswith("/ui/"):
            return self._ui(req)
        if _is_v1(req.path):
            return self._v1(req)
        self._check_method(req)
        r = route(req.path)
        req.user = self._authenticate(req)
        if r.kind == "base":
            if self.htpasswd is not None and req.user is None:
                # a Basic challenge here is how clients learn to send credentials at all
                raise self._challenge("authentication required (anonymous pulls of public names work)")
            return Response(200, {"Content-Type": "application/json", "Content-Length": "2"}, b"{}")
        if r.kind == "catalog":
            return catalog(self.store, req, lambda p: self._decide(p, req) is Decision.ALLOW)
        head = req.method == "HEAD"
        if r.kind == "manifest" and r.digest is None:
            # by tag: the publication and the tag in one read (one database round trip)
            found = self.store.publication_tag(r.name, r.reference)
            pub = self._admit(r, req, found[0] if found else None)
            return get_manifest(self.content, pub, r, req.header("Accept"), head=head,
                                tagged=found[1] if found else None)
        pub = self._publication(r, req)
        if r.kind == "manifest":
            return get_manifest(self.content, pub, r, req.header("Accept"), head=head)
        if r.kind == "blob":
            return get_blob(self.content, pub, r, req.header("Range"), redirect_expires=self.blob_redirect, head=head)
        if r.kind == "referrers":
            return get_referrers(self.store, pub, r, req)
        return tags_list(self.store, pub, req)

    @staticmethod
    def _check_method(req: Request) -> None:
        if req.method not in _READ_METHODS:
            raise RegistryHTTPError("UNSUPPORTED", f"this registry is read-only: {req.method[:20]} is not supported",
                                    headers={"Allow": "GET, HEAD"})

    def _v1(self, req: Request) -> Response:
        """The v1 API, whose errors are plain text (as Crane's), not the v2 JSON: the
        method check and a wrong password included."""
        try:
            self._check_method(req)
            req.user = self._authenticate(req)
        except RegistryHTTPError as exc:
            return v1api.V1Error(exc.status, exc.message, exc.headers).response()
        return v1api.handle(self.store, req, lambda pub: self._v1_allowed(pub, req),
                            lambda pub: self._decide(pub, req) is Decision.ALLOW)

    def _ui(self, req: Request) -> Response:
        """The web catalog: the same credentials and access rules as pulls (catalog/)."""
        if self._catalog is None:
            from reconciler.server.catalog import Catalog  # Jinja2 only when someone browses

            self._catalog = Catalog(lambda: self.store, self._authenticate, lambda p, r: self._decide(p, r),
                                    realm=self.realm, has_users=self.htpasswd is not None)
        return self._catalog.handle(req)  # type: ignore[no-any-return]

    def _authenticate(self, req: Request) -> str | None:
        """The user name for valid credentials, None for anonymous; 401 for wrong ones,
        429 when this address or user name failed too often (reconciler/server/logins.py)."""
        creds = parse_basic(req.header("Authorization"))
        if creds is None or self.logins is None:
            return None  # without a user list, credentials mean nothing: anonymous
        user, password = creds
        login = self.logins.check(user, password, req.client)
        if login.user is None:
            req.tried_user = user
            if login.retry_after:
                raise RegistryHTTPError("TOOMANYREQUESTS", "too many failed logins: try again later",
                                        headers={"Retry-After": str(login.retry_after)})
            raise self._challenge("invalid username or password")
        return user

    def _decide(self, pub: Publication, req: Request) -> Decision:
        """The one access check (reconciler/server/access.py) for every route."""
        return decide(pub.name, pub.protected, req.user, self.access)

    def _v1_allowed(self, pub: Publication, req: Request) -> None:
        """v1 access to a protected name: a Basic challenge when there is a user list,
        else 404 (Crane hid protected repositories from clients it could not admit); a
        user the access rules do not grant it gets the 404 of an unknown name."""
        decision = self._decide(pub, req)
        if decision is Decision.HIDDEN:
            raise v1api.V1Error(404, "Not Found")
        if decision is Decision.ANONYMOUS:
            if self.htpasswd is None:
                raise v1api.V1Error(404, "Not Found")
            raise v1api.V1Error(401, f"{pub.name} is protected: credentials required",
                                {"WWW-Authenticate": f'Basic realm="{self.realm}"'})

    def _challenge(self, message: str) -> RegistryHTTPError:
        return RegistryHTTPError("UNAUTHORIZED", message,
                                 headers={"WWW-Authenticate": f'Basic realm="{self.realm}"'})

    def _publication(self, r: Route, req: Request) -> Publication:
        return self._admit(r, req, self.store.publication_get(r.name))

    def _admit(self, r: Route, req: Request, pub: Publication | None) -> Publication:
        """``pub`` (the publication under the route's name) if this request may read it."""
        decision = Decision.ALLOW if pub is None else self._decide(pub, req)
        if pub is None or decision is Decision.HIDDEN:
            # a user without the right gets exactly the answer of a name that does not
            # exist: a 403 would tell them it exists (docs/server.md, Per-repository access)
            raise RegistryHTTPError("NAME_UNKNOWN", detail={"name": r.name})
        if decision is Decision.ANONYMOUS:
            if self.htpasswd is None:
                raise RegistryHTTPError("DENIED", f"{r.name} is protected and this server has no user list",
                                        detail={"name": r.name})
            raise self._challenge(f"{r.name} is protected: credentials required")
        return pub


def error_response(exc: RegistryHTTPError) -> Response:
    body = exc.body()
    headers = {"Content-Type": "application/json", "Content-Length": str(len(body)), **exc.headers}
    return Response(exc.status, headers, body)

