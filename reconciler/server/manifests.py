"""Manifest GET/HEAD with Accept negotiation.

The stored bytes are served unchanged whenever the client accepts their media type
(no ``Accept`` header, or ``*/*``, counts as accepting everything; a type listed with
``q=0`` is refused, as RFC 9110 says; other q-values do not rank anything, since we
hold one representation; Docker schema1 signed and unsigned count as one type because
registries label them interchangeably). Several ``Accept`` headers arrive joined by
commas (the WSGI server does that), which is the same list. When a
client that does not accept index types asks for a *tag* pointing at an index, it gets
the index's first linux/amd64 child if it accepts that child's type: Crane's fallback for
index-unaware clients (docs/original-system.md, "Manifest negotiation", step 3). Anything else is 404
``MANIFEST_UNKNOWN`` (saying so when the digest is an index entry of a platform the
repository does not mirror): a digest reference is never answered with other bytes than the
digest names, and we never convert between formats.
"""

from __future__ import annotations

from reconciler.errors import ManifestInvalid, NotFound
from reconciler.model import Digest, Index, parse_manifest
from reconciler.model import mediatypes as mt
from reconciler.model.content import Kind
from reconciler.model.repository import Publication
from reconciler.server.content import Content
from reconciler.server.errors import RegistryHTTPError
from reconciler.server.httpio import Response
from reconciler.server.routing import Route

_WILDCARDS = frozenset({"*/*", "application/*"})


def _refused(params: list[str]) -> bool:
    """Whether a media range's parameters include ``q=0`` (any spelling of zero)."""
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                return float(value.strip()) == 0.0
            except ValueError:
                return False
    return False


def accepted_types(header: str | None) -> frozenset[str] | None:
    """Media types named in ``Accept`` without ``q=0`` (other parameters dropped); None
    means "anything" (header absent, empty, or with an acceptable wildcard)."""
    if not header or not header.strip():
        return None
    named = [part.split(";") for part in header.split(",") if part.strip()]
    if not named:
        return None
    types = frozenset(p[0].strip().lower() for p in named if not _refused(p[1:]))
    if types & _WILDCARDS:
        return None
    if types & mt.SCHEMA1_TYPES:
        types = types | mt.SCHEMA1_TYPES
    return types


def _acceptable(media_type: str, accepted: frozenset[str] | None) -> bool:
    return accepted is None or media_type in accepted


def manifest_response(digest: Digest, media_type: str, raw: bytes) -> Response:
    quoted = f'"{digest}"'
    return Response(200, {
        "Content-Type": media_type,
        "Content-Length": str(len(raw)),
        "Docker-Content-Digest": str(digest),
        "ETag": quoted,
    }, raw)


def _unknown(route: Route, why: str) -> RegistryHTTPError:
    return RegistryHTTPError("MANIFEST_UNKNOWN", why, detail={"name": route.name, "reference": route.reference})


def get_manifest(content: Content, pub: Publication, route: Route, accept: str | None, *,
                 head: bool = False, tagged: Digest | None = None) -> Response:
    """``head``: answered from the manifest's row (digest, size, media type) whenever the
    stored type is acceptable, so a HEAD never reads bytes from the object storage.
    ``tagged``: what the route's tag points at in ``pub``'s version, when the caller read
    it already (``ReadView.publication_tag``)."""
    if route.digest is not None:
        digest = route.digest
        if content.holds(pub, digest) not in (Kind.MANIFEST, Kind.INDEX):
            if content.store.version_left_out(pub.repo_id, pub.version, digest):
                # an index entry of a platform this repository does not mirror: say so
                raise _unknown(route, "manifest unknown: the index lists it, but its platform was not mirrored "
                                      "(the repository keeps a platform subset)")
            raise _unknown(route, "manifest unknown")
    else:
        found = tagged if tagged is not None else content.store.version_tag(pub.repo_id, pub.version,
                                                                             route.reference)
        if found is None:
            raise _unknown(route, "manifest unknown: no such tag")
        digest = found
    accepted = accepted_types(accept)
    if head:
        meta = content.manifest_meta(digest)
        if meta is None:
            raise _unknown(route, "manifest unknown")
        if _acceptable(meta[0], accepted):
            return manifest_head(digest, *meta)
    try:
        media_type, raw = content.manifest(digest)
    except NotFound as exc:
        raise _unknown(route, "manifest unknown") from exc
    if _acceptable(media_type, accepted):
        return manifest_response(digest, media_type, raw)
    if mt.is_index(media_type) and route.digest is None:
        child = _amd64_fallback(content, pub, media_type, raw, accepted)
        if child is not None:
            return child
    raise _unknown(route, f"manifest unknown: it is a {media_type}, which the request's Accept header "
                          "does not include")


def manifest_head(digest: Digest, media_type: str, size: int) -> Response:
    """The headers of ``manifest_response`` without the bytes (the app sends no body for HEAD)."""
    return Response(200, {
        "Content-Type": media_type,
        "Content-Length": str(size),
        "Docker-Content-Digest": str(digest),
        "ETag": f'"{digest}"',
    })


def _amd64_fallback(content: Content, pub: Publication, media_type: str, raw: bytes,
                    accepted: frozenset[str] | None) -> Response | None:
    try:
        index = parse_manifest(raw, media_type)
    except ManifestInvalid:
        return None
    child = index.amd64_child() if isinstance(index, Index) else None
    if child is None or not _acceptable(child.media_type, accepted):
        return None
    if content.store.version_holds(pub.repo_id, pub.version, child.digest) != Kind.MANIFEST:
        return None
    child_type, child_raw = content.manifest(child.digest)
    return manifest_response(child.digest, child_type, child_raw)
