"""The Crane-mode WSGI application: snapshot, pure routing, then (serve-content mode
only) the one file a reply names.

It needs no store: everything comes from the app files under the data directory
(``Watcher``) and, in serve-content mode, from the content directories. Files are sent
with ``sendfile`` through the server's file wrapper; manifests are read whole (they are
small) so that their digest goes out as ``Docker-Content-Digest``, which Crane never sent
(docs/original-system.md, "Crane routes"), and their ``Content-Type`` is the body's own
media type when it names one (Crane labelled schema1 ``application/json`` and knew no OCI
types).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import stat
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconciler.model import jsonsafe
from reconciler.model import mediatypes as mt
from reconciler.server import accesslog, probes
from reconciler.server.access import AccessRules
from reconciler.server.auth import Htpasswd, parse_basic
from reconciler.server.crane.config import CraneConfig
from reconciler.server.crane.index import Watcher
from reconciler.server.crane.routes import handle
from reconciler.server.crane.values import CraneRequest, Reply, text_error, v2_error
from reconciler.server.httpio import FileBody, Request, Response
from reconciler.server.logins import LoginGuard
from reconciler.server.metrics import ServerMetrics

log = logging.getLogger(__name__)

#: manifests larger than this are not manifests (distribution caps them at 4 MiB)
MAX_MANIFEST = 4 * 1024 * 1024


class CraneApp:
    """``CraneApp(config)`` is a WSGI callable serving ``config.data_dir`` as Crane did."""

    def __init__(self, config: CraneConfig, *, htpasswd: Htpasswd | None = None,
                 access: AccessRules | None = None, watcher: Watcher | None = None) -> None:
        self.config = config
        self.htpasswd = htpasswd
        self.logins = LoginGuard(htpasswd) if htpasswd is not None else None
        self.access = access
        self.watcher = watcher or Watcher(config.data_dir, config.polling_interval)
        #: /metrics: requests by route and status, bytes, latency (no store: no served counts)
        self.metrics = ServerMetrics()

    def close(self) -> None:
        """Nothing to release (the gunicorn runner calls this on worker exit)."""

    def __call__(self, environ: Mapping[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        started = time.monotonic()
        req = Request.from_environ(environ)
        try:
            resp = self.respond(req)
        except Exception:  # noqa: BLE001 - a bug must not kill the worker; log it whole
            log.exception("internal error serving %s %s", req.method, req.path)
            resp = _response(text_error(500))
        return accesslog.send_logged(req, resp, environ, start_response, started, self.metrics.observe)

    def respond(self, req: Request) -> Response:
        # probes and metrics before anything else: no credentials, no app file lookups
        if req.path in probes.PATHS:
            return probes.answer(req, self._ready)
        if req.path == "/metrics" and req.method in ("GET", "HEAD"):
            return self.metrics.response()
        retry_after = self._login(req)
        if retry_after:
            return _response(Reply(429, {"Content-Type": "text/plain; charset=utf-8", "Retry-After": str(retry_after)},
                                   b"too many failed logins: try again later"))
        crane_req = CraneRequest(method=req.method, path=req.path, query=req.query, accept=req.header("Accept"),
                                 host=req.header("Host"), user=req.user, access=self.access, time=time.time())
        if self.config.debug:
            log.debug("%s %s Accept: %s", req.method, req.path, crane_req.accept)
        reply = handle(self.watcher.current(), self.config, crane_req)
        if reply.file is None:
            return _response(reply)
        return self._file(reply, req.path.startswith("/v2/"))

    def _ready(self) -> str | None:
        """Ready when the data directory can be read (its app files are what is served)."""
        try:
            os.listdir(self.config.data_dir)
        except OSError as exc:
            return f"cannot read the data directory {self.config.data_dir}: {exc.strerror}"
        self.watcher.current()
        return None

    def _login(self, req: Request) -> int:
        """Sets ``req.user``: valid Basic credentials (``--htpasswd``) make protected
        repositories visible (those ``--access`` grants the user, when given); anything
        else is anonymous (Crane never challenged, so neither do we). Returns the
        Retry-After seconds of a throttled login (reconciler/server/logins.py), else 0."""
        creds = parse_basic(req.header("Authorization"))
        if creds is None or self.logins is None:
            return 0
        login = self.logins.check(creds[0], creds[1], req.client)
        req.user = login.user
        if login.user is None:
            req.tried_user = creds[0]
        return login.retry_after

    def _file(self, reply: Reply, v2: bool) -> Response:
        assert reply.file is not None
        not_found = v2_error(404) if v2 else text_error(404)
        try:
            # without blocking, and only a regular file: a FIFO or a device in the content
            # tree must not hang or flood the thread
            fd = os.open(reply.file, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            return _response(not_found)
        f = os.fdopen(fd, "rb")
        headers = dict(reply.headers)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                f.close()
                log.error("%s is not a regular file: not served", reply.file)
                return _response(not_found)
            size = st.st_size
            if reply.kind == "manifest":
                with f:
                    body = f.read(MAX_MANIFEST + 1)
                if len(body) > MAX_MANIFEST:
                    log.error("%s is over %d bytes: not served as a manifest", reply.file, MAX_MANIFEST)
                    return _response(not_found)
                headers["Content-Type"] = manifest_media_type(body, headers["Content-Type"])
                headers["Docker-Content-Digest"] = "sha256:" + hashlib.sha256(body).hexdigest()
                return _response(Reply(200, headers, body))
            if reply.kind == "blob":
                headers["Docker-Content-Digest"] = reply.file.rsplit("/", 1)[1]
        except OSError:
            f.close()
            return _response(not_found)
        headers["Content-Length"] = str(size)
        return Response(200, headers, FileBody(f, 0, size))


def manifest_media_type(body: bytes, chosen: str) -> str:
    """The body's own ``mediaType`` when it is a manifest type; schema1 (which has none)
    by its signatures; else what Crane's negotiation chose."""
    try:
        doc = jsonsafe.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return chosen
    if not isinstance(doc, dict):
        return chosen
    declared = doc.get("mediaType")
    if isinstance(declared, str) and declared in mt.MANIFEST_TYPES:
        return declared
    if doc.get("schemaVersion") == 1:
        return mt.DOCKER_SCHEMA1_SIGNED if "signatures" in doc else mt.DOCKER_SCHEMA1
    return chosen


def _response(reply: Reply) -> Response:
    headers = dict(reply.headers)
    headers["Content-Length"] = str(len(reply.body))
    return Response(reply.status, headers, reply.body)
