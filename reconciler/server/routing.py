"""Map a request path to a route of the pull API.

``/v2/<name>/manifests/<reference>``, ``/v2/<name>/blobs/<digest>``,
``/v2/<name>/referrers/<digest>``, ``/v2/<name>/tags/list``, ``/v2/_catalog`` and ``/v2/``. A repository name may itself
contain ``manifests`` or ``blobs`` components, so the split is at the right-most
route keyword, as Crane and the distribution registry do. Names are validated with
Docker's rules before anything is looked up, so ``..``, ``%2e%2e`` (decoded by the
server before we see it), empty components or absolute paths never reach the store;
digests are validated by the model and only then turned into store paths.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from reconciler.errors import InvalidInput
from reconciler.model import Digest, validate_repository_name
from reconciler.model.reference import is_valid_tag
from reconciler.server.errors import RegistryHTTPError

_ROUTE = re.compile(r"^/v2/(?P<name>.+)/(?:(?P<kind>manifests|blobs|referrers)/(?P<ref>[^/]+)|(?P<tags>tags/list))$")
_UPLOADS = re.compile(r"^/v2/.+/blobs/uploads(?:/.*)?$")


@dataclass(frozen=True)
class Route:
    """``kind`` is one of base, catalog, manifest, blob, referrers, tags."""

    kind: str
    name: str = ""
    reference: str = ""
    digest: Digest | None = None


def _name(text: str) -> str:
    try:
        return validate_repository_name(text)
    except InvalidInput:
        raise RegistryHTTPError("NAME_INVALID", detail={"name": text[:300]}) from None


def parse_digest(text: str) -> Digest:
    try:
        return Digest.parse(text)
    except InvalidInput:
        raise RegistryHTTPError("DIGEST_INVALID", "invalid digest", detail={"digest": text[:300]}) from None


def route(path: str) -> Route:
    """The route for ``path``; ``RegistryHTTPError`` for an invalid name, reference or
    digest, or a path outside the API."""
    if path in ("/v2", "/v2/"):
        return Route("base")
    if path == "/v2/_catalog":
        return Route("catalog")
    if _UPLOADS.fullmatch(path):
        raise RegistryHTTPError("UNSUPPORTED", "this registry is read-only: uploads are not accepted",
                                headers={"Allow": ""})
    m = _ROUTE.fullmatch(path)
    if m is None:
        raise RegistryHTTPError("NOT_FOUND", f"no such endpoint: {path[:200]}")
    name = _name(m["name"])
    if m["tags"]:
        return Route("tags", name)
    ref = m["ref"]
    if m["kind"] == "blobs":
        return Route("blob", name, ref, parse_digest(ref))
    if m["kind"] == "referrers":
        return Route("referrers", name, ref, parse_digest(ref))
    if ":" in ref:
        return Route("manifest", name, ref, parse_digest(ref))
    if not is_valid_tag(ref):
        raise RegistryHTTPError("MANIFEST_UNKNOWN", "no such tag: not a valid tag name", detail={"tag": ref[:300]})
    return Route("manifest", name, ref)
