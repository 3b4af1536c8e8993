"""``GET /v2/<name>/tags/list`` and ``GET /v2/_catalog`` with ``n``/``last`` paging.

Results are in lexical order. ``n`` caps the number of entries, ``last`` starts after
that entry; when more entries follow, a ``Link: <...>; rel="next"`` header gives the
next page's URL (the distribution spec's pull section). Without ``n`` everything is
returned at once.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import urlencode

from reconciler.model.repository import Publication
from reconciler.server.errors import RegistryHTTPError
from reconciler.server.httpio import Request, Response
from reconciler.store.roles.read import ReadView


def page_size(n_text: str | None) -> int | None:
    """The ``n`` of a paged listing (None: absent or empty, no paging); 400
    ``PAGINATION_NUMBER_INVALID`` for anything but a plain number."""
    if n_text is None or n_text == "":
        return None
    # ASCII digits only: str.isdigit() also accepts '²', which int() then refuses
    if not (n_text.isascii() and n_text.isdigit()) or len(n_text) > 9:
        raise RegistryHTTPError("PAGINATION_NUMBER_INVALID", detail={"n": n_text[:50]})
    return int(n_text)


def page_params(req: Request) -> tuple[int | None, str | None]:
    """(n, last) from the query; 400 ``PAGINATION_NUMBER_INVALID`` for a bad ``n``."""
    return page_size(req.param("n")), (req.param("last") or None)


def _json(obj: object, extra: dict[str, str] | None = None) -> Response:
    body = json.dumps(obj).encode()
    return Response(200, {"Content-Type": "application/json", "Content-Length": str(len(body)), **(extra or {})},
                    body)


def _page(fetch: Callable[[str | None, int | None], list[str]], n: int | None,
          last: str | None, path: str) -> tuple[list[str], dict[str, str]]:
    if n == 0:
        return [], {}
    # ask for one more than n to learn whether a next page exists
    items = fetch(last, None if n is None else n + 1)
    if n is None or len(items) <= n:
        return items, {}
    items = items[:n]
    query = urlencode({"n": n, "last": items[-1]})
    return items, {"Link": f'<{path}?{query}>; rel="next"'}


def tags_list(store: ReadView, pub: Publication, req: Request) -> Response:
    n, last = page_params(req)
    tags, headers = _page(
        lambda after, limit: store.version_tag_names(pub.repo_id, pub.version, after=after, limit=limit),
        n, last, f"/v2/{pub.name}/tags/list")
    return _json({"name": pub.name, "tags": tags}, headers)


def catalog(store: ReadView, req: Request, visible: Callable[[Publication], bool]) -> Response:
    """Published names the requester may pull (protected ones only with credentials)."""
    n, last = page_params(req)
    names = [p.name for p in store.publication_list() if visible(p)]

    def fetch(after: str | None, limit: int | None) -> list[str]:
        selected = [x for x in names if after is None or x > after]
        return selected if limit is None else selected[:limit]

    repos, headers = _page(fetch, n, last, "/v2/_catalog")
    return _json({"repositories": repos}, headers)
