"""A static file server standing in for the Apache that served Pulp's published tree
(docs/original-system.md, "The static tree"): Python's ``http.server`` on a free loopback
port, with the ``Content-Type`` forced per directory as ``pulp_docker.conf`` did
(``manifests/1`` -> schema1 signed, ``manifests/2`` -> schema2, ``manifests/list`` ->
manifest list) and the ``Docker-Distribution-API-Version`` header. Symlinks (tag entries)
are followed."""

from __future__ import annotations

import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from reconciler.model import mediatypes as mt

_BY_DIRECTORY = {"1": mt.DOCKER_SCHEMA1_SIGNED, "2": mt.DOCKER_SCHEMA2, "list": mt.DOCKER_MANIFEST_LIST}


class _Server(ThreadingHTTPServer):
    """Remembers the path of every request its handlers logged."""

    requests_seen: list[str]


class _Handler(SimpleHTTPRequestHandler):
    server: _Server

    def guess_type(self, path: Any) -> str:
        parts = str(path).split("/")
        if len(parts) >= 3 and parts[-3] == "manifests" and parts[-2] in _BY_DIRECTORY:
            return _BY_DIRECTORY[parts[-2]]
        return "application/octet-stream"

    def end_headers(self) -> None:
        self.send_header("Docker-Distribution-API-Version", "registry/2.0")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        self.server.requests_seen.append(self.path)


class StaticHost:
    """``with StaticHost(root) as host: host.url`` -> ``http://127.0.0.1:PORT``."""

    def __init__(self, root: Path) -> None:
        self.server = _Server(("127.0.0.1", 0), partial(_Handler, directory=str(root)))
        self.server.daemon_threads = True
        self.server.requests_seen = []
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def requests_seen(self) -> list[str]:
        return self.server.requests_seen

    def __enter__(self) -> StaticHost:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=10)
