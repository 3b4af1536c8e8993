"""One access log line per request, in Combined Log Format plus the duration.

``host - user [time] "METHOD URI PROTO" status bytes "referer" "user-agent" 1234us``,
on the ``reconciler.server.access`` logger; ``reconciler serve`` sends it to stderr.
``host`` is the client (the proxy's client behind a trusted proxy); ``user`` is the
authenticated user, or the name tried when the credentials were refused (the status,
401 or 429, tells which), or ``-``. Credentials in an absolute-form request target
(``GET http://user:password@host/...``) are replaced by ``***`` before the line is
written; control characters, quotes and spaces in the fields are escaped, so a client
cannot forge or split lines.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from reconciler.server.httpio import FileBody, Request, Response, send

log = logging.getLogger("reconciler.server.access")


#: ``scheme://userinfo@`` at the start of an absolute-form request target
_USERINFO = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*://)[^/?#]*@")
_UNSAFE = re.compile(r'[\x00-\x1f\x7f"\\]')
_UNSAFE_UNQUOTED = re.compile(r'[\x00-\x20\x7f"\\]')


def _uri(environ: Mapping[str, Any]) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return _USERINFO.sub(r"\1***@", str(raw))
    qs = environ.get("QUERY_STRING")
    return str(environ.get("PATH_INFO", "")) + (f"?{qs}" if qs else "")


def _escape(match: re.Match[str]) -> str:
    char = match.group()
    return "\\" + char if char in '"\\' else f"\\x{ord(char):02x}"


def _clean(value: object) -> str:
    """For a quoted field: quotes, backslashes and control characters escaped (``\\x0a``)."""
    return _UNSAFE.sub(_escape, str(value))


def _clean_word(value: str) -> str:
    """For an unquoted field (the user): spaces escaped too, so the line keeps its columns."""
    return _UNSAFE_UNQUOTED.sub(_escape, value[:100])


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
             environ.get("REMOTE_ADDR", "-"), _clean_word(user) if user else "-", stamp,
             _clean(environ.get("REQUEST_METHOD", "-")),
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
        write(environ, req.user if req.user is not None else req.tried_user, resp.status, length, started)
        if observe is not None:
            observe(req.path, req.method, resp.status, length, time.monotonic() - started)

    return send(resp, environ, start_response, done)
