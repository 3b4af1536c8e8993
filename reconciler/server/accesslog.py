"""One access log line per request, in Combined Log Format plus the duration.

``host - user [time] "METHOD URI PROTO" status bytes "referer" "user-agent" 1234us``,
on the ``reconciler.server.access`` logger; ``reconciler serve`` sends it to stderr.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconciler.server.httpio import FileBody, Request, Response, send

log = logging.getLogger("reconciler.server.access")


def _uri(environ: Mapping[str, Any]) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return str(raw)
    qs = environ.get("QUERY_STRING")
    return str(environ.get("PATH_INFO", "")) + (f"?{qs}" if qs else "")


def _clean(value: object) -> str:
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def write(environ: Mapping[str, Any], user: str | None, status: int, size: int, started: float) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    micros = int((time.monotonic() - started) * 1_000_000)
    stamp = time.strftime("%d/%b/%Y:%H:%M:%S %z")
    # the same facts as fields, for `--log-format json`
    fields = {"remote": environ.get("REMOTE_ADDR"), "user": user, "method": environ.get("REQUEST_METHOD"),
              "uri": _uri(environ), "status": status, "bytes": size, "duration_us": micros,
              "user_agent": environ.get("HTTP_USER_AGENT")}
    log.info('%s - %s [%s] "%s %s %s" %d %d "%s" "%s" %dus',
             environ.get("REMOTE_ADDR", "-"), user or "-", stamp, environ.get("REQUEST_METHOD", "-"),
             _clean(_uri(environ)), environ.get("SERVER_PROTOCOL", "-"), status, size,
             _clean(environ.get("HTTP_REFERER", "-")), _clean(environ.get("HTTP_USER_AGENT", "-")), micros,
             extra={"fields": fields})


#: (path, method, status, body bytes, seconds) once a response is out: the metrics
Observer = Callable[[str, str, int, int, float], None]


def send_logged(req: Request, resp: Response, environ: Mapping[str, Any], start_response: Callable[..., Any],
                started: float, observe: Observer | None = None) -> Iterable[bytes]:
    """Send ``resp`` for ``req`` and write its access log line once the body is out. Both
    WSGI apps (the store's registry and Crane mode) finish a request here, so HEAD is
    answered the same way by both: the GET's headers, no body. ``observe`` (the metrics)
    hears of every response at the same moment."""
    if req.method == "HEAD" and resp.body:
        if isinstance(resp.body, FileBody):
            resp.body.close()
        resp.body = b""  # Content-Length keeps the size a GET would send
    length = resp.length

    def done() -> None:
        write(environ, req.user, resp.status, length, started)
        if observe is not None:
            observe(req.path, req.method, resp.status, length, time.monotonic() - started)

    return send(resp, environ, start_response, done)
