"""The request and reply values of Crane mode's pure routing functions.

Routing never touches the network or the disk: it gets a ``CraneRequest`` and a
snapshot and returns a ``Reply`` (status, headers, body). In serve-content mode a reply
may instead name a file to send (``file``); the WSGI app opens it.
"""

from __future__ import annotations

import html
import json
import os.path
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from http import HTTPStatus
from urllib.parse import quote

from reconciler.server.access import AccessRules, may_read
from reconciler.server.crane.appfile import AppFile

SAFE_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
#: what may stay as it is in a Location header: RFC 3986's reserved and unreserved
#: characters and '%'; anything else (spaces, controls, non-ASCII) is percent-encoded
_URL_SAFE = ":/?#[]@!$&'()*+,;=%-._~"


@dataclass(frozen=True)
class CraneRequest:
    method: str
    path: str
    query: Mapping[str, list[str]] = field(default_factory=dict)
    accept: str | None = None
    host: str | None = None
    #: the user of valid Basic credentials (only with --htpasswd); None: anonymous
    user: str | None = None
    #: --access: which users may see which protected repositories (None: every user all)
    access: AccessRules | None = None
    #: the request's time (Unix seconds): CDN auth tokens expire relative to it
    time: float = 0.0

    def may_read(self, name: str, protected: bool) -> bool:
        """The one access check (reconciler/server/access.py); Crane answers a repository
        this client may not read as if it did not exist."""
        return may_read(name, protected, self.user, self.access)

    def param(self, name: str) -> str | None:
        values = self.query.get(name)
        return values[0] if values else None


@dataclass
class Reply:
    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    #: serve-content mode: send this file; ``kind`` is "manifest", "blob" or "file"
    file: str | None = None
    kind: str = "file"


def reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"


def json_reply(status: int, obj: object, headers: Mapping[str, str] | None = None) -> Reply:
    return Reply(status, {"Content-Type": "application/json", **(headers or {})}, json.dumps(obj).encode())


def v2_error(status: int, message: str | None = None) -> Reply:
    """Crane's v2 error body: the HTTP status as the code, no version header
    (docs/original-system.md, "Crane routes")."""
    return json_reply(status, {"errors": [{"code": str(status), "message": message or reason(status)}]})


def text_error(status: int, message: str | None = None) -> Reply:
    """Crane's v1 / other errors: the reason phrase as the body (Flask's text/html)."""
    return Reply(status, {"Content-Type": "text/html; charset=utf-8"}, (message or reason(status)).encode())


def redirect(url: str) -> Reply:
    """302 with the HTML stub Flask's ``redirect()`` writes. Every part of ``url`` was
    validated (app files when loaded, references by the routes); encoding what is left
    anyway means no text can ever split the ``Location`` header."""
    url = quote(url, safe=_URL_SAFE)
    quoted = html.escape(url)
    body = ('<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 3.2 Final//EN">\n<title>Redirecting...</title>\n'
            f'<h1>Redirecting...</h1>\n<p>You should be redirected automatically to target URL: '
            f'<a href="{quoted}">{quoted}</a>.  If not click the link.')
    return Reply(302, {"Location": url, "Content-Type": "text/html; charset=utf-8"}, body.encode())


def content_file(content_dir: str, app: AppFile, sub: str) -> str | None:
    """``<content_dir>/<repository>/<sub>``, or None when the app file's ``repository``
    is missing or is not one plain path component (no ``..``, no ``/``), or when the
    normalised path is not inside ``<content_dir>/<repository>/``. ``sub`` is built from
    validated parts only (the second check is the backstop should one ever slip
    through). Symlinks the publisher put inside the tree are followed (Pulp links blobs
    into its content store): the file system is the publisher's, the path text is not."""
    repository = app.repository
    if repository is None or not SAFE_COMPONENT_RE.fullmatch(repository):
        return None
    root = os.path.normpath(os.path.join(content_dir, repository))
    path = os.path.normpath(os.path.join(root, sub))
    if not path.startswith(root + os.sep):
        return None
    return path
