"""The Docker Registry v1 pull API, as Crane answered it (docs/original-system.md, "The v1
pull API"), for published repositories that hold v1 images.

=========================================  ==============================================
``GET /v1/_ping``                          200 ``true``, ``X-Docker-Registry-Standalone``
``GET /v1/users/``                         200 ``"OK"`` (lets ``docker login`` succeed)
``GET /v1/repositories/<name>/images``     ``[{"id": ...}]``, ``X-Docker-Endpoints``
``GET /v1/repositories/<name>/tags``       ``{tag: image_id}``
``GET /v1/repositories/<name>/tags/<t>``   ``"<image_id>"`` or 404
``GET /v1/images/<id>/ancestry|json|layer`` the file, from the first published repository
                                           holding the image that the client may see
=========================================  ==============================================

Every response carries ``X-Docker-Registry-Version: 0.6.6`` and
``X-Docker-Registry-Config: common``; ``json`` adds ``X-Docker-Size``. A name with more
than one ``/`` is unknown and a leading ``library/`` is dropped, as in Crane (a name
published with ``library/`` literally is found too). Crane
redirected image files to static hosting; we serve them (the layer from the blob file).
Errors are plain text with the status, as Crane's v1 views gave them; a protected
repository asks for credentials (401 + Basic challenge) when the server has a user list.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from reconciler.errors import InvalidInput, NotFound
from reconciler.model import validate_repository_name
from reconciler.model.content import V1Content
from reconciler.model.repository import Publication
from reconciler.model.v1image import is_image_id
from reconciler.server.httpio import FileBody, Request, Response
from reconciler.store.roles.read import ReadView

V1_HEADERS = {"X-Docker-Registry-Version": "0.6.6", "X-Docker-Registry-Config": "common"}
_REPO = re.compile(r"^/v1/repositories/(?P<name>[^/]+(?:/[^/]+)?)/(?P<what>images|tags)(?:/(?P<tag>[^/]+))?/?$")
_IMAGE = re.compile(r"^/v1/images/(?P<id>[^/]+)/(?P<file>[^/]+)/?$")

#: (publication, user) -> may this client see it; 401 raised by the caller's callback
Visible = Callable[[Publication], bool]


class V1Error(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers or {}

    def response(self) -> Response:
        body = self.message.encode()
        return Response(self.status, {"Content-Type": "text/plain; charset=utf-8", "Content-Length": str(len(body)),
                                      **V1_HEADERS, **self.headers}, body)


def _json(data: object, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    body = json.dumps(data).encode()
    return Response(status, {"Content-Type": "application/json", "Content-Length": str(len(body)),
                             **V1_HEADERS, **(headers or {})}, body)


def handle(store: ReadView, req: Request, allowed: Callable[[Publication], None], visible: Visible) -> Response:
    """Answer one ``/v1/...`` request. ``allowed(pub)`` raises when the client may not
    read ``pub`` (a 401 challenge); ``visible(pub)`` says whether it may, without raising."""
    try:
        return _dispatch(store, req, allowed, visible)
    except V1Error as exc:
        return exc.response()


def _dispatch(store: ReadView, req: Request, allowed: Callable[[Publication], None], visible: Visible) -> Response:
    path = req.path
    if path in ("/v1/_ping", "/v1/_ping/"):
        return _json(True, headers={"X-Docker-Registry-Standalone": "True"})
    if path in ("/v1/users", "/v1/users/"):
        return _json("OK")
    m = _REPO.fullmatch(path)
    if m:
        pub, content = _repository(store, m["name"], allowed)
        if m["what"] == "images":
            if m["tag"] is not None:
                raise V1Error(404, "Not Found")
            host = req.header("Host") or str(req.environ.get("SERVER_NAME", "localhost"))
            return _json([{"id": i} for i in sorted(content.images)], headers={"X-Docker-Endpoints": host})
        if m["tag"] is None:
            return _json(dict(sorted(content.tags.items())))
        image_id = content.tags.get(m["tag"])
        if image_id is None:
            raise V1Error(404, "Tag not found")
        return _json(image_id)
    m = _IMAGE.fullmatch(path)
    if m and m["file"] in ("ancestry", "json", "layer") and is_image_id(m["id"]):
        return _image_file(store, m["id"], m["file"], visible)
    raise V1Error(404, "Not Found")


def _repository(store: ReadView, name: str, allowed: Callable[[Publication], None]) -> tuple[Publication, V1Content]:
    # Crane dropped library/; a name published with it literally is still found
    candidates = [name[len("library/"):], name] if name.startswith("library/") else [name]
    pub = None
    for candidate in candidates:
        try:
            validate_repository_name(candidate)
        except InvalidInput:
            raise V1Error(404, "Not Found") from None
        pub = store.publication_get(candidate)
        if pub is not None:
            break
    if pub is None:
        raise V1Error(404, "Not Found")
    allowed(pub)
    content = store.v1_version_get(pub.repo_id, pub.version)
    if content.empty:
        raise V1Error(404, "Not Found")  # published, but it has no v1 side
    return pub, content


def _image_file(store: ReadView, image_id: str, file: str, visible: Visible) -> Response:
    holder = next((p for p in store.v1_image_publications(image_id) if visible(p)), None)
    if holder is None:
        raise V1Error(404, "Image not found")
    try:
        image = store.v1_image_get(image_id)
        if file == "ancestry":
            return _json(list(image.ancestry))
        if file == "json":
            return Response(200, {"Content-Type": "application/json", "Content-Length": str(len(image.json)),
                                  "X-Docker-Size": str(image.size), **V1_HEADERS}, image.json)
        size = store.blob_size(image.layer)
        f = store.blob_open(image.layer)
    except NotFound as exc:
        raise V1Error(404, f"Image not found: {exc}") from exc
    return Response(200, {"Content-Type": "application/octet-stream", "Content-Length": str(size), **V1_HEADERS},
                    FileBody(f, 0, size))
