"""``GET /v2/<name>/referrers/<digest>``: the OCI distribution spec's referrers API.

The answer is an OCI image index whose ``manifests`` are the descriptors of the
manifests and indexes in the published version whose ``subject`` is ``<digest>`` (media
type, digest, size, ``artifactType``: the manifest's own or else its config's media
type, and its annotations), sorted by digest. It comes from the store's subject links
(``ReadView.version_referrers``), one indexed query, never from reading manifests.

- ``?artifactType=T`` keeps only the referrers listed with type T, and the answer says
  so with ``OCI-Filters-Applied: artifactType`` (a client that sees no such header
  filters itself).
- A digest nothing refers to, or one the version does not hold, is a 200 with an empty
  index (the spec's rule: the referrers of an unknown manifest are simply none).
- Pages: at most ``PAGE`` descriptors (or ``n``, when the client asks for fewer); when
  more follow, ``Link: <...?last=<digest>...>; rel="next"`` gives the next page, as the
  tag list does.
"""

from __future__ import annotations

from urllib.parse import urlencode

from reconciler.model import mediatypes as mt
from reconciler.model.referrers import referrers_index
from reconciler.model.repository import Publication
from reconciler.server.httpio import Request, Response
from reconciler.server.listing import page_size
from reconciler.server.routing import Route, parse_digest
from reconciler.store.roles.read import ReadView

#: descriptors per answer at most: 1,000 descriptors with a few annotations each stay far
#: below the 4 MiB a client accepts for a manifest
PAGE = 1000
FILTERS_HEADER = "OCI-Filters-Applied"


def get_referrers(store: ReadView, pub: Publication, r: Route, req: Request) -> Response:
    assert r.digest is not None  # routing parsed it
    artifact_type = req.param("artifactType") or None
    n = page_size(req.param("n"))
    limit = PAGE if n is None else min(n, PAGE)
    last_text = req.param("last") or None
    after = parse_digest(last_text) if last_text is not None else None
    found = store.version_referrers(pub.repo_id, pub.version, r.digest, artifact_type=artifact_type,
                                    after=after, limit=limit + 1) if limit else []
    headers = {"Content-Type": mt.OCI_INDEX}
    if len(found) > limit:
        found = found[:limit]
        query = {"n": str(limit), "last": str(found[-1].digest)}
        if artifact_type:
            query["artifactType"] = artifact_type
        headers["Link"] = f'</v2/{pub.name}/referrers/{r.digest}?{urlencode(query)}>; rel="next"'
    if artifact_type:
        headers[FILTERS_HEADER] = "artifactType"
    body = referrers_index(found)
    headers["Content-Length"] = str(len(body))
    return Response(200, headers, body)
