"""The web catalog at ``/ui/`` of ``reconciler serve``: what is published, for people.

Server-rendered HTML (Jinja2 templates in ``templates/``, autoescaped; one stylesheet;
no JavaScript), readable on a phone. Pages: ``/ui/`` lists the published repositories the
visitor may read (with a name filter), ``/ui/r/NAME`` shows one: tags with full digests,
platforms, sizes, created times and copy-paste pull commands, and the recent versions
with what each changed (and the git commit ``reconciler watch`` applied). Read-only:
there is no form that writes anything.

Access is the registry's own: the same htpasswd users over HTTP Basic (``/ui/login``
asks the browser for them) and the same rules (``access.decide``). A protected
repository the visitor may not read is absent from the list and its page answers 404,
exactly like a name that does not exist, as the registry API does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from importlib import resources
from urllib.parse import quote

import jinja2

from reconciler.errors import InvalidInput
from reconciler.model import validate_repository_name
from reconciler.model.repository import Publication
from reconciler.server.access import Decision
from reconciler.server.catalog.views import Views
from reconciler.server.errors import RegistryHTTPError
from reconciler.server.httpio import Request, Response
from reconciler.store.roles.read import ReadView

#: the page's own stylesheet only; no scripts, no frames, no third-party anything
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
                               "frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_REPO = re.compile(r"^/ui/r/(?P<name>.+?)/?$")


def _human(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TiB"


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.PackageLoader("reconciler.server.catalog", "templates"),
                             autoescape=True, undefined=jinja2.StrictUndefined, trim_blocks=True,
                             lstrip_blocks=True)
    env.filters["human"] = _human
    env.filters["urlpath"] = lambda s: quote(str(s), safe="/")
    return env


class Catalog:
    """``handle(req)`` answers everything under ``/ui``. ``authenticate`` is the
    registry's (None: anonymous; ``RegistryHTTPError`` 401 for wrong credentials),
    ``decide`` its access check."""

    def __init__(self, store: Callable[[], ReadView], authenticate: Callable[[Request], str | None],
                 decide: Callable[[Publication, Request], Decision], *, realm: str, has_users: bool) -> None:
        self.views = Views(store)
        self.authenticate, self.decide = authenticate, decide
        self.realm, self.has_users = realm, has_users
        self.env = _environment()
        self.css = resources.files("reconciler.server.catalog").joinpath("static/style.css").read_bytes()

    def _page(self, status: int, template: str, req: Request, **values: object) -> Response:
        body = self.env.get_template(template).render(user=req.user, has_users=self.has_users, **values).encode()
        return Response(status, {"Content-Type": "text/html; charset=utf-8", "Content-Length": str(len(body)),
                                 **SECURITY_HEADERS}, body)

    def _challenge(self, req: Request, message: str) -> Response:
        resp = self._page(401, "message.html", req, title="Sign in", message=message)
        resp.headers["WWW-Authenticate"] = f'Basic realm="{self.realm}", charset="UTF-8"'
        return resp

    def handle(self, req: Request) -> Response:
        if req.method not in ("GET", "HEAD"):
            resp = self._page(405, "message.html", req, title="Read-only",
                              message="The catalog only shows what is published; nothing can be changed here.")
            resp.headers["Allow"] = "GET, HEAD"
            return resp
        try:
            req.user = self.authenticate(req)
        except RegistryHTTPError:
            return self._challenge(req, "That user name and password were not accepted.")
        path = req.path
        if path == "/ui/style.css":
            return Response(200, {"Content-Type": "text/css; charset=utf-8", "Content-Length": str(len(self.css)),
                                  "X-Content-Type-Options": "nosniff", "Cache-Control": "max-age=300"}, self.css)
        if path in ("/ui", "/ui/"):
            return self._index(req)
        if path == "/ui/login":
            if not self.has_users:
                return self._page(404, "message.html", req, title="No sign-in",
                                  message="This server has no user list: everything it publishes is public.")
            if req.user is None:
                return self._challenge(req, "Sign in with your registry user name and password.")
            return Response(303, {"Location": "/ui/", "Content-Length": "0", **SECURITY_HEADERS})
        m = _REPO.match(path)
        if m:
            return self._repository(req, m["name"])
        return self._not_found(req, "There is no such page.")

    def _not_found(self, req: Request, message: str) -> Response:
        return self._page(404, "message.html", req, title="Not found", message=message)

    def _visible(self, pub: Publication, req: Request) -> bool:
        return self.decide(pub, req) is Decision.ALLOW

    def _index(self, req: Request) -> Response:
        query = (req.param("q") or "").strip().lower()[:200]
        repos = self.views.listing(lambda p: self._visible(p, req), query)
        hidden = self.has_users and req.user is None
        return self._page(200, "index.html", req, title="Published repositories", repos=repos, query=query,
                          hidden_hint=hidden)

    def _repository(self, req: Request, name: str) -> Response:
        try:
            validate_repository_name(name)
        except InvalidInput:
            return self._not_found(req, "That is not a repository name.")
        pub = self.views.store.publication_get(name)
        if pub is None or not self._visible(pub, req):
            # the same answer for "missing" and "not yours": no hint that a name exists
            return self._not_found(req, f"No published repository {name} that you may read."
                                   + (" Signing in may show more." if self.has_users and req.user is None else ""))
        try:
            page = int(req.param("page") or "1")
        except ValueError:
            page = 1
        host = req.header("Host") or "localhost"
        plain_http = str(req.environ.get("wsgi.url_scheme", "http")) == "http"
        return self._page(200, "repository.html", req, title=name, repo=self.views.repo_page(pub, page),
                          host=host, plain_http=plain_http)
