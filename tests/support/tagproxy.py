"""A reverse proxy in front of a test registry that paginates the tag list.

distribution 2.8 ignores ``n`` on ``/v2/<name>/tags/list`` and never sends a ``Link``
header, but Docker Hub, GHCR and distribution 3 do paginate. This proxy forwards every
request to the real registry unchanged, except tag lists: it sorts the tags, applies
``last`` and ``n`` (or ``default_page`` when the client sends no ``n``) and adds
``Link: <...>; rel="next"`` (relative, or absolute with ``absolute_links``), as the
distribution spec describes. ``tag_pages`` counts the tag-list requests it answered.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlencode, urlsplit

import requests

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authenticate",
               "proxy-authorization", "content-length"}


@dataclass
class TagPagingProxy:
    upstream: str
    default_page: int | None = None
    absolute_links: bool = False
    tag_pages: int = 0
    paths: list[str] = field(default_factory=list)

    def start(self) -> TagPagingProxy:
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="tag-proxy", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        self._session.close()

    def page(self, path: str, tags: list[str], query: dict[str, list[str]]) -> tuple[list[str], str | None]:
        """One page of ``tags`` and the next-page link, or None on the last page."""
        ordered = sorted(tags)
        last = query.get("last", [None])[0]
        if last is not None:
            ordered = [t for t in ordered if t > last]
        n_text = query.get("n", [None])[0]
        n = int(n_text) if n_text else self.default_page
        if n is None or len(ordered) <= n:
            return ordered, None
        chunk = ordered[:n]
        link = f"{path}?{urlencode({'n': n, 'last': chunk[-1]})}"
        if self.absolute_links:
            link = self.url + link
        return chunk, link

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                with proxy._lock:
                    proxy.paths.append(f"{self.command} {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                url = urlsplit(self.path)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                if self.command == "GET" and url.path.endswith("/tags/list"):
                    return self._tags(url.path, parse_qs(url.query), headers)
                resp = proxy._session.request(self.command, proxy.upstream + self.path, headers=headers, data=body,
                                              stream=True, allow_redirects=False, timeout=30)
                with resp:
                    self.send_response(resp.status_code)
                    for k, v in resp.headers.items():
                        if k.lower() not in _HOP_BY_HOP:
                            self.send_header(k, v)
                    data = b"" if self.command == "HEAD" else resp.raw.read()
                    length_out = resp.headers.get("Content-Length") if self.command == "HEAD" else str(len(data))
                    self.send_header("Content-Length", length_out or "0")
                    self.end_headers()
                    if data:
                        self.wfile.write(data)

            def _tags(self, path: str, query: dict[str, list[str]], headers: dict[str, str]) -> None:
                resp = proxy._session.get(proxy.upstream + path, headers=headers, timeout=30)
                with resp:
                    if resp.status_code != 200:
                        data, status, extra = resp.content, resp.status_code, {}
                    else:
                        doc = resp.json()
                        tags, link = proxy.page(path, doc.get("tags") or [], query)
                        data = json.dumps({"name": doc["name"], "tags": tags}).encode()
                        status, extra = 200, ({"Link": f'<{link}>; rel="next"'} if link else {})
                        with proxy._lock:
                            proxy.tag_pages += 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in extra.items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
