"""Crane's Docker registry v1 endpoints (docs/original-system.md, "The v1 pull API"),
served from version 1 app files, as pure functions.

Every answer carries ``X-Docker-Registry-Version: 0.6.6`` and
``X-Docker-Registry-Config: common``; 200s are ``application/json``; errors are the
plain reason phrase. Repository names with more than one ``/`` are 404 and a leading
``library/`` is stripped (the v1 Docker client adds it). Image files redirect to
``<url><image id>/<ancestry|json|layer>`` of the first repository holding the image
that the client may see; "first" is the sorted order of registry ids (Crane iterated a
set, so the choice could differ between processes).
"""

from __future__ import annotations

import re

from reconciler.server.crane.config import CraneConfig
from reconciler.server.crane.index import Snapshot
from reconciler.server.crane.values import CraneRequest, Reply, content_file, json_reply, redirect, text_error

IMAGE_FILES = frozenset({"ancestry", "json", "layer"})
_IMAGE_ID_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
HEADERS = {"X-Docker-Registry-Version": "0.6.6", "X-Docker-Registry-Config": "common"}


def handle(snapshot: Snapshot, config: CraneConfig, req: CraneRequest) -> Reply:
    reply = _route(snapshot, config, req)
    if reply.status == 200 and reply.file is None:
        reply.headers["Content-Type"] = "application/json"
    reply.headers.update(HEADERS)
    return reply


def _route(snapshot: Snapshot, config: CraneConfig, req: CraneRequest) -> Reply:
    path = req.path[len("/v1"):]
    if path in ("/users", "/users/"):
        # lets `docker login` succeed when Apache Basic auth guards /v1/ (Crane did this)
        if req.method == "POST":
            return json_reply(201, "User Created")
        return json_reply(200, "OK") if req.method in ("GET", "HEAD") else _not_allowed("GET, HEAD, POST")
    if req.method not in ("GET", "HEAD"):
        return _not_allowed("GET, HEAD")
    if path == "/_ping":
        return json_reply(200, True, {"X-Docker-Registry-Standalone": "True"})
    if path == "/search":
        # Crane needed a GSA or Solr backend for search; without one the answer is 404
        return text_error(400, 'parameter "q" is required') if req.param("q") is None else text_error(404)
    if path.startswith("/repositories/"):
        return _repository(snapshot, config, req, path[len("/repositories/"):])
    if path.startswith("/images/"):
        return _image_file(snapshot, config, req, path[len("/images/"):])
    return text_error(404)


def _not_allowed(allow: str) -> Reply:
    reply = text_error(405)
    reply.headers["Allow"] = allow
    return reply


def _repository(snapshot: Snapshot, config: CraneConfig, req: CraneRequest, rest: str) -> Reply:
    tag = None
    if rest.endswith("/images"):
        repo_id, what = rest[: -len("/images")], "images"
    elif rest.endswith("/tags"):
        repo_id, what = rest[: -len("/tags")], "tags"
    elif "/tags/" in rest:
        repo_id, tag = rest.rsplit("/tags/", 1)
        what = "tag"
    else:
        return text_error(404)
    if repo_id.count("/") > 1 or not repo_id:
        return text_error(404)
    if repo_id.startswith("library/"):
        repo_id = repo_id[len("library/"):]
    app = snapshot.v1.get(repo_id)
    if app is None or not req.may_read(repo_id, app.protected):
        return text_error(404)
    if what == "images":
        endpoint = config.endpoint or req.host or ""
        return json_reply(200, [{"id": i} for i in app.images], {"X-Docker-Endpoints": endpoint})
    if what == "tags":
        return json_reply(200, dict(app.tags))
    image_id = app.tags.get(tag or "")
    return json_reply(200, image_id) if image_id is not None else text_error(404)


def _image_file(snapshot: Snapshot, config: CraneConfig, req: CraneRequest, rest: str) -> Reply:
    image_id, _, filename = rest.partition("/")
    if filename not in IMAGE_FILES or not _IMAGE_ID_RE.fullmatch(image_id):
        return text_error(404)
    for registry_id in snapshot.images.get(image_id, ()):
        app = snapshot.v1[registry_id]
        if not req.may_read(registry_id, app.protected):
            continue
        if config.serve_content:
            file = content_file(config.content_dir_v1, app, f"{image_id}/{filename}")
            if file is None:
                return text_error(404)
            media_type = "application/octet-stream" if filename == "layer" else "application/json"
            return Reply(200, {"Content-Type": media_type}, file=file, kind="file")
        base = app.url if app.url.endswith("/") else app.url + "/"
        return redirect(f"{base}{image_id}/{filename}")
    return text_error(404)

