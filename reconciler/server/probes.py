"""Liveness (``/healthz``) and readiness (``/readyz``) answers, and the small HTTP server
``reconciler watch --metrics-port`` runs for ``/metrics`` and both probes.

``/healthz`` says the process answers: 200, no credentials, no store access, so an
orchestrator never restarts a server because a dependency is slow. ``/readyz`` runs a
check the caller gives (Crane mode: the app files are loaded; watch: the store opens and
answers) and says 503 with the reason when it fails, so a load balancer stops sending
traffic without anybody restarting anything. Both answer GET and HEAD only.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable, Mapping
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from reconciler.server.httpio import Request, Response, send

log = logging.getLogger(__name__)

HEALTHZ, READYZ = "/healthz", "/readyz"
PATHS = (HEALTHZ, READYZ)

#: a readiness check: None when ready, else what is wrong
ReadyCheck = Callable[[], str | None]


def _text(status: int, text: str, **headers: str) -> Response:
    body = text.encode()
    return Response(status, {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body)),
                             "Cache-Control": "no-store", **headers}, body)


def healthz() -> Response:
    return _text(200, "ok\n")


def readyz(check: ReadyCheck) -> Response:
    try:
        problem = check()
    except Exception as exc:  # noqa: BLE001 - any failure of the check means "not ready", said plainly
        problem = f"{type(exc).__name__}: {exc}"
    if problem:
        return _text(503, f"not ready: {problem}\n", **{"Retry-After": "5"})
    return _text(200, "ready\n")


def answer(req: Request, check: ReadyCheck) -> Response:
    """The answer to a request for one of ``PATHS``."""
    if req.method not in ("GET", "HEAD"):
        return _text(405, "GET or HEAD only\n", Allow="GET, HEAD")
    return healthz() if req.path == HEALTHZ else readyz(check)


class _Threading(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base class's name
        log.debug("side endpoint: " + format, *args)


class SideServer:
    """``/metrics``, ``/healthz`` and ``/readyz`` on their own port, in a daemon thread."""

    def __init__(self, host: str, port: int, *, metrics: Callable[[], tuple[bytes, str]], check: ReadyCheck) -> None:
        self.metrics, self.check = metrics, check
        self._server = make_server(host, port, self._app, server_class=_Threading, handler_class=_QuietHandler)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(target=self._server.serve_forever, name="metrics-server", daemon=True)

    def _app(self, environ: Mapping[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        req = Request.from_environ(environ)
        if req.path in PATHS:
            resp = answer(req, self.check)
        elif req.path == "/metrics" and req.method in ("GET", "HEAD"):
            body, content_type = self.metrics()
            resp = Response(200, {"Content-Type": content_type, "Content-Length": str(len(body)),
                                  "Cache-Control": "no-store"}, b"" if req.method == "HEAD" else body)
        else:
            resp = _text(404, "not found: this port serves /metrics, /healthz and /readyz\n")
        if req.method == "HEAD":
            resp.body = b""  # Content-Length keeps the size a GET would send
        return send(resp, environ, start_response, lambda: None)

    def start(self) -> SideServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
