"""Blob GET/HEAD with single-range ``Range`` support.

A blob is served under a name only if that name's published version holds it (so
credentials for one protected repository never reveal another's layers by digest). A
satisfiable single range gives 206 with ``Content-Range``; an unsatisfiable one 416 with
``Content-Range: bytes */SIZE``; a multi-range or malformed header is ignored (full
200), which RFC 9110 allows.

With ``redirect_expires`` set (``reconciler serve --blob-redirect``) and a blob storage
that can presign (S3), a GET is answered with ``307`` to a presigned object-storage URL
valid that many seconds, the way Crane redirected to static hosting: the bytes then
never pass through this server. The publication and authentication checks happen
before, so the URL is only handed to a client allowed to read the blob. A HEAD is
answered from the blob's row in the database (digest and size), never from the bytes, so
it costs no object-storage request and works while the object storage is down.

Membership comes from ``Content.holds``: the published version, or during the grace
period a version the name pointed at before (a pull that overlaps a publish).
"""

from __future__ import annotations

import logging
import re

from reconciler.errors import NotFound
from reconciler.model.content import Kind
from reconciler.model.repository import Publication
from reconciler.server.content import Content
from reconciler.server.errors import RegistryHTTPError
from reconciler.server.httpio import FileBody, Response
from reconciler.server.routing import Route

log = logging.getLogger(__name__)

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")
_BEYOND_ANY_BLOB = 10**18


def parse_range(header: str | None, size: int) -> tuple[int, int] | None:
    """(first, last) inclusive for a single satisfiable range; None to serve it whole;
    ``RegistryHTTPError`` 416 when the range cannot be satisfied."""
    if not header:
        return None
    m = _RANGE.fullmatch(header.strip().replace(" ", ""))
    if m is None or (not m[1] and not m[2]):
        return None
    if not m[1]:  # suffix: the last N bytes
        n = _position(m[2])
        if n == 0 or size == 0:
            raise _unsatisfiable(size)
        return max(size - n, 0), size - 1
    first = _position(m[1])
    if m[2] and _position(m[2]) < first:
        return None  # syntactically invalid: ignore the header
    if first >= size:
        raise _unsatisfiable(size)
    last = _position(m[2]) if m[2] else size - 1
    return first, min(last, size - 1)


def _position(digits: str) -> int:
    """A byte position; any number of digits (Python refuses to convert over 4300, and
    anything past 18 digits is beyond every blob anyway)."""
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) <= 18 else _BEYOND_ANY_BLOB


def _unsatisfiable(size: int) -> RegistryHTTPError:
    return RegistryHTTPError("RANGE_INVALID", detail={"size": size},
                             headers={"Content-Range": f"bytes */{size}"})


def get_blob(content: Content, pub: Publication, route: Route, range_header: str | None, *,
             redirect_expires: int | None = None, head: bool = False) -> Response:
    digest = route.digest
    assert digest is not None
    unknown = RegistryHTTPError("BLOB_UNKNOWN", detail={"name": route.name, "digest": str(digest)})
    if content.holds(pub, digest) != Kind.BLOB:
        raise unknown
    if redirect_expires is not None and not head:
        url = content.blob_url(digest, expires=redirect_expires)
        if url is not None:
            # the URL expires: no cache may keep this answer longer than the URL is valid
            return Response(307, {"Location": url, "Docker-Content-Digest": str(digest),
                                  "Cache-Control": "no-store", "Content-Length": "0"})
    try:
        size = content.store.blob_size(digest)
        window = parse_range(range_header, size)  # before opening: a 416 has no file to close
        # a HEAD is answered from the blob's row: no read from the (maybe remote) storage
        file = None if head else content.open_blob(digest)
    except NotFound as exc:
        log.error("published version %s@%d holds blob %s but the store cannot open it: %s",
                  pub.repo_id, pub.version, digest, exc)
        raise unknown from exc
    headers = {
        "Content-Type": "application/octet-stream",
        "Docker-Content-Digest": str(digest),
        "ETag": f'"{digest}"',
        "Accept-Ranges": "bytes",
        "Cache-Control": "max-age=31536000",
    }
    first, last = window if window is not None else (0, size - 1)
    length = last - first + 1
    headers["Content-Length"] = str(length)
    if window is not None:
        headers["Content-Range"] = f"bytes {first}-{last}/{size}"
    status = 200 if window is None else 206
    return Response(status, headers, FileBody(file, first, length) if file is not None else b"")
