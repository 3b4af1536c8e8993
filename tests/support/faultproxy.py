"""A fault-injecting reverse proxy on 127.0.0.1 in front of a real test registry.

Every request is forwarded to the registry unchanged unless a ``Fault`` matches it
(``re.search`` of its pattern on ``"METHOD /path"``), in which case the proxy misbehaves
the way real upstreams and networks do:

=============  ==============================================================================
``status``     answer ``status`` (503, 429 ...) with an OCI error body (error ``code``) and
               ``headers`` (e.g. ``Retry-After``) instead of forwarding
``reset``      forward, send the real status line, headers and ``after`` body bytes, then
               reset the TCP connection (RST, SO_LINGER 0): a connection reset mid-blob
``stall``      forward, send headers and ``after`` body bytes, then send nothing more until
               ``release()`` or the proxy stops (the client's read timeout must fire)
``corrupt``    forward, flip one byte of the body (same length): a digest mismatch
``not_found``  404 with ``BLOB_UNKNOWN`` / ``MANIFEST_UNKNOWN`` as the registry sends it
``empty_tags`` 200 with ``{"name": ..., "tags": []}``: an upstream that lost its tags
``null_tags``  200 with ``{"name": ..., "tags": null}``, as some registries list no tags
``strip``      forward, but drop the response headers named in ``headers`` (e.g. an
               optional ``Docker-Content-Digest``)
``page_limit`` 400 ``PAGINATION_NUMBER_INVALID`` when the query's ``n`` is above ``limit``
               (``limit=0``: any ``n``); otherwise forward
``hold``       wait (``held`` is set) until ``release()``, then forward: keeps a client
               in flight for as long as a test needs
=============  ==============================================================================

``times`` is how many matching requests a fault hits (None: every one); ``hits`` counts
them, ``log`` records ``"METHOD /path[?query] -> what"`` for every request. Waits are bounded:
``stop()`` releases everything. Registry quirks built from these: ``quirkproxy.py``.
"""

from __future__ import annotations

import io
import json
import re
import socket
import struct
import sys
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TypedDict, Unpack
from urllib.parse import parse_qs

import requests

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade", "proxy-authenticate",
               "proxy-authorization", "content-length"}
KINDS = {"status", "reset", "stall", "corrupt", "not_found", "empty_tags", "null_tags", "strip", "page_limit", "hold"}
#: no wait in the proxy lasts longer than this, whatever a test forgets
MAX_WAIT = 60.0


@dataclass
class Fault:
    pattern: str
    kind: str
    times: int | None = 1
    status: int = 503
    headers: dict[str, str] = field(default_factory=dict)
    after: int = 0
    code: str = "UNAVAILABLE"
    limit: int = 0
    hits: int = 0
    held: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}")
        self._re = re.compile(self.pattern)

    def release(self) -> None:
        self.released.set()

    def take(self, line: str, query: str = "") -> bool:
        """Whether this fault hits the request ``line`` (and count it)."""
        if (self.times is not None and self.hits >= self.times) or not self._re.search(line):
            return False
        if self.kind == "page_limit":
            n = parse_qs(query).get("n", [""])[0]
            if not n or (n.isdigit() and int(n) <= self.limit and self.limit):
                return False
        self.hits += 1
        return True


class _Server(ThreadingHTTPServer):
    def handle_error(self, request: socket.socket | tuple[bytes, socket.socket], client_address: object) -> None:
        """A client that gave up (its read timeout fired, or it saw a reset) and closed
        the connection is what the faults are for, not an error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class FaultDetails(TypedDict, total=False):
    """What ``FaultProxy.add`` may set on a ``Fault`` besides its pattern, kind and times."""

    status: int
    headers: dict[str, str]
    after: int
    code: str
    limit: int


class FaultOptions(FaultDetails, total=False):
    times: int | None


@dataclass
class FaultProxy:
    upstream: str
    faults: list[Fault] = field(default_factory=list)
    log: list[str] = field(default_factory=list)

    def start(self) -> FaultProxy:
        self._session = requests.Session()
        self._lock = threading.Lock()
        self._httpd = _Server(("127.0.0.1", 0), self._handler_class())
        self._httpd.daemon_threads = True
        self.port = self._httpd.server_address[1]
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="fault-proxy", daemon=True)
        self._thread.start()
        return self

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def add(self, pattern: str, kind: str, **kw: Unpack[FaultOptions]) -> Fault:
        fault = Fault(pattern, kind, **kw)
        with self._lock:
            self.faults.append(fault)
        return fault

    def clear(self) -> None:
        """Remove every fault (releasing held and stalled requests)."""
        with self._lock:
            faults, self.faults = self.faults, []
        for f in faults:
            f.release()

    def stop(self) -> None:
        self.clear()
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=10)
        self._session.close()

    def _match(self, line: str, query: str = "") -> Fault | None:
        with self._lock:
            for f in self.faults:
                if f.take(line, query):
                    return f
        return None

    def _record(self, entry: str) -> None:
        with self._lock:
            self.log.append(entry)

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _forward(self) -> None:
                path, _, query = self.path.partition("?")
                line = f"{self.command} {path}"
                fault = proxy._match(line, query)
                proxy._record(f"{line}{'?' + query if query else ''} -> {fault.kind if fault else 'forwarded'}")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                if fault is not None and fault.kind == "hold":
                    fault.held.set()
                    fault.released.wait(MAX_WAIT)
                    fault = None
                if fault is not None and fault.kind in ("status", "not_found", "empty_tags", "null_tags", "page_limit"):
                    return self._answer(fault)
                headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "content-length")}
                resp = proxy._session.request(self.command, proxy.upstream + self.path, headers=headers, data=body,
                                              allow_redirects=False, timeout=30)
                with resp:
                    data = b"" if self.command == "HEAD" else resp.content
                    self.send_response(resp.status_code)
                    dropped = {k.lower() for k in fault.headers} if fault is not None and fault.kind == "strip" else set()
                    for k, v in resp.headers.items():
                        if k.lower() not in _HOP_BY_HOP and k.lower() not in dropped:
                            self.send_header(k, v)
                    head_length = resp.headers.get("Content-Length") or "0"
                    self.send_header("Content-Length", head_length if self.command == "HEAD" else str(len(data)))
                    self.end_headers()
                if fault is not None and fault.kind == "corrupt" and data:
                    data = data[:-1] + bytes([data[-1] ^ 0xFF])
                if fault is not None and fault.kind in ("reset", "stall"):
                    self.wfile.write(data[:fault.after])
                    self.wfile.flush()
                    if fault.kind == "stall":
                        fault.released.wait(MAX_WAIT)
                    self._reset()
                    return
                if data:
                    self.wfile.write(data)

            def _answer(self, fault: Fault) -> None:
                if fault.kind in ("empty_tags", "null_tags"):
                    name = self.path.split("?", 1)[0].split("/v2/", 1)[-1].rsplit("/tags/list", 1)[0]
                    doc: dict[str, object]
                    status, doc = 200, {"name": name, "tags": [] if fault.kind == "empty_tags" else None}
                elif fault.kind == "page_limit":
                    status, doc = 400, {"errors": [{"code": "PAGINATION_NUMBER_INVALID",
                                                    "message": "invalid number of results requested"}]}
                elif fault.kind == "not_found":
                    code = "BLOB_UNKNOWN" if "/blobs/" in self.path else "MANIFEST_UNKNOWN"
                    status, doc = 404, {"errors": [{"code": code, "message": code.lower().replace("_", " ")}]}
                else:
                    status, doc = fault.status, {"errors": [{"code": fault.code, "message": "injected fault"}]}
                data = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                for k, v in fault.headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", "0" if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            def _reset(self) -> None:
                """Abort the connection with a TCP RST (SO_LINGER 0 on close)."""
                self.close_connection = True
                try:
                    self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
                # the socket really closes (RST, no FIN) only once its file objects are closed too
                self.rfile.close()
                self.wfile.close()
                self.connection.close()
                self.wfile = io.BytesIO()  # what the server flushes and closes after the handler

            do_GET = do_HEAD = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
