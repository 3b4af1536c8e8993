"""Crane's routing table (docs/original-system.md, "Crane routes") as pure functions.

``handle(snapshot, config, request) -> Reply``. v2 paths are split by shape, not by
substring: the last two components are the file (``manifests/<ref>``, ``blobs/<digest>``,
``tags/list``) and everything before them is the name. (Crane split at the first
*substring* ``tags``/``manifests``/``blobs``, so a name such as ``x/blobstore`` was
mis-parsed.) References and digests are checked against the tag and digest grammars
before they become part of a URL or a file path.
"""

from __future__ import annotations

import hmac
import json
import re
from html import escape
from urllib.parse import urlsplit

from reconciler.model.reference import TAG_RE
from reconciler.server.crane import v1
from reconciler.server.crane.config import CraneConfig
from reconciler.server.crane.index import Snapshot
from reconciler.server.crane.negotiate import choose_manifest, parse_accept
from reconciler.server.crane.values import CraneRequest, Reply, content_file, json_reply, redirect, text_error, v2_error
from reconciler.server.errors import RegistryHTTPError
from reconciler.server.listing import page_size

DIGEST_RE = re.compile(r"^[a-z0-9]+(?:[+._-][a-z0-9]+)*:[a-zA-Z0-9=_-]+$")
API_VERSION = {"Docker-Distribution-API-Version": "registry/2.0"}


def handle(snapshot: Snapshot, config: CraneConfig, req: CraneRequest) -> Reply:
    path = req.path
    if path == "/v1" or path.startswith("/v1/"):
        return v1.handle(snapshot, config, req)
    if path == "/v2" or path.startswith("/v2/"):
        if req.method not in ("GET", "HEAD"):
            return _with_allow(v2_error(405))
        reply = _v2(snapshot, config, req)
        if reply.status == 200:
            reply.headers.update(API_VERSION)
        return reply
    if path.rstrip("/") in ("/crane/repositories", "/crane/repositories/v1", "/crane/repositories/v2"):
        if req.method not in ("GET", "HEAD"):
            return _with_allow(text_error(405))
        return _admin(snapshot, req, path.rstrip("/").endswith("/v2"))
    return text_error(404)


def _with_allow(reply: Reply) -> Reply:
    reply.headers["Allow"] = "GET, HEAD"
    return reply


def _v2(snapshot: Snapshot, config: CraneConfig, req: CraneRequest) -> Reply:
    rest = req.path[len("/v2/"):] if req.path.startswith("/v2/") else ""
    if rest == "":
        return json_reply(200, {})
    if rest == "_catalog":
        return _catalog(snapshot, req)
    parts = rest.split("/")
    if len(parts) < 3 or parts[-2] not in ("manifests", "blobs", "tags"):
        return v2_error(404)
    name, kind, ref = "/".join(parts[:-2]), parts[-2], parts[-1]
    app = snapshot.v2.get(name)
    if app is None or not req.may_read(name, app.protected):
        # protected and not authorised looks the same as unknown
        # (docs/original-system.md, "Protection")
        return v2_error(404)
    if kind == "tags":
        if ref != "list":
            return v2_error(404)
        sub, media_type, file_kind = "tags/list", "application/json", "file"
    elif kind == "blobs":
        if not DIGEST_RE.fullmatch(ref):
            return v2_error(404)
        sub, media_type, file_kind = f"blobs/{ref}", "application/octet-stream", "blob"
    else:
        if not (TAG_RE.fullmatch(ref) or DIGEST_RE.fullmatch(ref)):
            return v2_error(404)
        sub, chosen = choose_manifest(app, ref, parse_accept(req.accept))
        media_type, file_kind = chosen or "application/json", "manifest"
    if config.serve_content:
        file = content_file(config.content_dir_v2, app, sub)
        if file is None:
            return v2_error(404)
        return Reply(200, {"Content-Type": media_type}, file=file, kind=file_kind)
    url = redirect_base(app.url) + sub
    if config.url_match and config.url_replace:
        url = url.replace(config.url_match, config.url_replace)
    if config.url_auth_secret:
        url += f"?{config.url_auth_param}={cdn_token(config, urlsplit(url).path, req.time)}"
    return redirect(url)


def cdn_token(config: CraneConfig, path: str, now: float) -> str:
    """Crane's CDN token (Akamai Token 2.0 style, 11.1): ``exp=<expiry>~hmac=<hex>``,
    the HMAC keyed with the hex-decoded secret over ``exp=<expiry>~url=<path>``."""
    assert config.url_auth_secret is not None
    expires = int(now) + config.url_auth_ttl
    message = f"exp={expires}~url={path}".encode()
    mac = hmac.new(bytes.fromhex(config.url_auth_secret), message, config.url_auth_algo).hexdigest()
    return f"exp={expires}~hmac={mac}"


def redirect_base(url: str) -> str:
    return url if url.endswith("/") else url + "/"


def _catalog(snapshot: Snapshot, req: CraneRequest) -> Reply:
    """Not in Crane (docs/original-system.md, "Crane routes"): the v2 names this client may
    pull, paged by ``n``/``last``."""
    names = sorted(n for n, app in snapshot.v2.items() if req.may_read(n, app.protected))
    last = req.param("last")
    if last:
        names = [n for n in names if n > last]
    try:
        n = page_size(req.param("n"))  # the registry's own check: '²' or 5,000 digits are a 400, not a 500
    except RegistryHTTPError:
        return v2_error(400, "n must be a non-negative integer")
    headers = {}
    if n is not None:
        if len(names) > n and n > 0:
            headers["Link"] = f'</v2/_catalog?n={n}&last={names[n - 1]}>; rel="next"'
        names = names[:n]
    return json_reply(200, {"repositories": names}, headers)


def _admin(snapshot: Snapshot, req: CraneRequest, v2_only: bool) -> Reply:
    """``/crane/repositories[/v1]`` (v1 repositories) and ``/crane/repositories/v2``:
    JSON when ``Accept`` is exactly ``application/json``, else an HTML page
    (docs/original-system.md, "Crane routes").
    Only the repositories this client may read are listed (Crane listed all of them,
    protected ones with their v1 tags and image ids, to anyone who could reach it)."""
    data: dict[str, dict[str, object]]
    if v2_only:
        data = {name: {"protected": app.protected} for name, app in sorted(snapshot.v2.items())
                if req.may_read(name, app.protected)}
    else:
        data = {name: {"image_ids": list(app.images), "tags": dict(app.tags), "protected": app.protected}
                for name, app in sorted(snapshot.v1.items()) if req.may_read(name, app.protected)}
    if req.accept == "application/json":
        return json_reply(200, data)
    rows = "".join(f"<tr><td>{escape(name)}</td><td><pre>{escape(json.dumps(info, indent=1))}</pre></td></tr>"
                   for name, info in data.items())
    page = (f"<!DOCTYPE html>\n<html><head><title>Crane repositories</title></head><body>"
            f"<h1>Repositories ({'v2' if v2_only else 'v1'})</h1>"
            f"<table><tr><th>name</th><th>details</th></tr>{rows}</table></body></html>")
    return Reply(200, {"Content-Type": "text/html; charset=utf-8"}, page.encode())
