"""One access log line per request, in Combined Log Format plus the duration.

``host - user [time] "METHOD URI PROTO" status bytes "referer" "user-agent" 1234us``,
on the ``reconciler.server.access`` logger; ``reconciler serve`` sends it to stderr.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from typing import Any

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
    log.info('%s - %s [%s] "%s %s %s" %d %d "%s" "%s" %dus',
             environ.get("REMOTE_ADDR", "-"), user or "-", stamp, environ.get("REQUEST_METHOD", "-"),
             _clean(_uri(environ)), environ.get("SERVER_PROTOCOL", "-"), status, size,
             _clean(environ.get("HTTP_REFERER", "-")), _clean(environ.get("HTTP_USER_AGENT", "-")), micros)
