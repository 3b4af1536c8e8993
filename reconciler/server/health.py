"""``/healthz`` and ``/readyz``: what a load balancer or an orchestrator asks a replica.

- ``GET /healthz``: 200 while the worker answers requests at all (liveness: restart the
  replica when it fails). It touches neither the database nor the object storage.
- ``GET /readyz``: 200 when the replica can serve everything (readiness: keep it in
  rotation), else 503; the JSON body names each check:

  ``database``      one round trip to the metadata store;
  ``blob_storage``  the object storage is known to belong to this store (a replica that
                    started while it was unreachable has not checked that yet) and is
                    not failing: the worker's circuit breaker is closed. While the
                    breaker is open, a readiness check after its cool-down is the one
                    request that tries the storage again, so an idle replica recovers
                    without client traffic.

Neither needs credentials, whatever ``--htpasswd`` says: they reveal nothing about the
content. Both answer ``HEAD`` too.
"""

from __future__ import annotations

import json
from collections.abc import Callable

from reconciler.errors import ReconcilerError
from reconciler.model.content import Kind
from reconciler.server.content import Content
from reconciler.server.errors import RegistryHTTPError
from reconciler.server.guard import CLOSED
from reconciler.server.httpio import Response

PATHS = ("/healthz", "/readyz")
OK = "ok"


def _json(status: int, body: dict[str, object]) -> Response:
    raw = json.dumps(body, sort_keys=True).encode()
    return Response(status, {"Content-Type": "application/json", "Content-Length": str(len(raw)),
                             "Cache-Control": "no-store"}, raw)


def healthz() -> Response:
    return _json(200, {"status": OK})


def readyz(content: Callable[[], Content]) -> Response:
    """``content`` opens the store on first use (it may fail: the database is down)."""
    checks: dict[str, str] = {}
    try:
        c = content()
        c.store.ping()
        checks["database"] = OK
    except ReconcilerError as exc:
        checks["database"] = exc.message
        return _json(503, {"ready": False, "checks": checks})
    checks["blob_storage"] = _blob_storage(c)
    ready = all(v == OK for v in checks.values())
    return _json(200 if ready else 503, {"ready": ready, "checks": checks})


def _blob_storage(c: Content) -> str:
    if not (c.remote(Kind.BLOB) or c.remote(Kind.MANIFEST)):
        return OK
    try:
        # closed and checked: no request; otherwise one small read of the storage
        with c.guard.call():
            c.store.check_blob_storage(probe=c.guard.state != CLOSED)
    except RegistryHTTPError as exc:
        return exc.message
    except ReconcilerError as exc:  # another store's storage: never ready
        return exc.message
    return OK
