"""Helpers for server tests: fill a store with published repositories of every kind,
start ``reconciler serve`` as a real subprocess on a free loopback port, call the WSGI
app in-process."""

from __future__ import annotations

import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import requests

from reconciler.model import Digest
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.store.protocol import Store
from tests.support.imagegen import Image, build_image, build_multiarch, store_image

REPO_ROOT = Path(__file__).resolve().parents[2]


def content_of(*images: Image) -> ContentSet:
    blobs: set[Digest] = set()
    manifests: set[Digest] = set()
    indexes: set[Digest] = set()
    for img in images:
        blobs |= {Digest.parse(d) for d in img.all_blobs()}
        for m in img.all_manifests():
            (indexes if m.is_index else manifests).add(m.digest)
    return ContentSet(frozenset(blobs), frozenset(manifests), frozenset(indexes))


def commit_tags(store: Store, repo_id: str, tags: Mapping[str, Image], *, extra: tuple[Image, ...] = (),
                operation: str = "test") -> int:
    """Make ``tags`` (plus untagged ``extra`` images) the next version of ``repo_id``."""
    if store.repository_find(repo_id) is None:
        store.repository_create(repo_id)
    for img in (*tags.values(), *extra):
        store_image(store, img)
    base = store.repository_get(repo_id).latest_version
    info = store.version_commit(repo_id, base=base, content=content_of(*tags.values(), *extra),
                                tags={t: TagEntry(i.digest, Origin.MANUAL) for t, i in tags.items()},
                                operation=operation)
    return info.number if info else base


@dataclass
class Fixture:
    """What ``fill_store`` put where: name -> tag -> Image."""

    images: dict[str, dict[str, Image]] = field(default_factory=dict)


def fill_store(store: Store) -> Fixture:
    """Published repositories: Docker schema2 (``test/docker``), OCI (``test/oci``), a Docker
    manifest list (``test/list``), an OCI index (``test/index``), a protected one
    (``test/secret``), and an unpublished one (``hidden``)."""
    fx = Fixture()
    plan: dict[str, tuple[str, dict[str, Image], bool]] = {
        "docker": ("test/docker", {"v1": build_image("docker-v1"), "latest": build_image("docker-v2")}, False),
        "oci": ("test/oci", {"v1": build_image("oci-v1", oci=True)}, False),
        "list": ("test/list", {"v1": build_multiarch("list-v1")}, False),
        "index": ("test/index", {"v1": build_multiarch("index-v1", oci=True)}, False),
        "secret": ("test/secret", {"v1": build_image("secret-v1")}, True),
    }
    for repo_id, (name, tags, protected) in plan.items():
        version = commit_tags(store, repo_id, tags)
        store.publish(repo_id, name=name, version=version, protected=protected)
        fx.images[name] = tags
    commit_tags(store, "hidden", {"v1": build_image("hidden-v1")})
    return fx


@contextmanager
def backend_opener(request: Any, root: Path) -> Iterator[Callable[[], Store]]:
    """Opens the store of a fixture parametrized ``["sqlite", "postgresql"]`` (the server's
    lookups are SQL, so server tests run on both); a PostgreSQL database is checked out of
    the session's server for the fixture's life and handed back after."""
    if request.param == "sqlite":
        from reconciler.store.sqlite import SQLiteStore

        yield lambda: SQLiteStore(root / "store")
        return
    from reconciler.store.postgres import PostgresStore

    pg = request.getfixturevalue("postgres_server")
    url = pg.checkout()
    try:
        yield lambda: PostgresStore(url, blobs=root / "blobs")
    finally:
        pg.checkin(url)


def filled_store(root: Path) -> Path:
    """A SQLite store at ``root/store`` filled by ``fill_store``; its path."""
    from reconciler.store.sqlite import SQLiteStore

    store = SQLiteStore(root / "store")
    try:
        fill_store(store)
    finally:
        store.close()
    return root / "store"


def raw_http(host: str, request_line: str, headers: Mapping[str, str] | None = None) -> tuple[int, bytes, bytes]:
    """Send exactly this request (``Host`` and ``Connection: close`` added) to ``host``
    (``ip:port``), so no client library normalises it first; (status, head, body)."""
    ip, port = host.rsplit(":", 1)
    lines = [request_line, f"Host: {host}", "Connection: close",
             *(f"{k}: {v}" for k, v in (headers or {}).items()), "", ""]
    with socket.create_connection((ip, int(port)), timeout=30) as sock:
        sock.sendall("\r\n".join(lines).encode("latin-1"))
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), head, body


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def require_binary(name: str, package: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise AssertionError(f"{name} is not installed: apt-get install {package} (scripts/setup.sh --test does it)")
    return path


@dataclass
class Server:
    url: str
    host: str
    proc: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_server(store_path: Path | str, log_path: Path, *, htpasswd: Path | None = None, workers: int = 2,
               serve_args: Sequence[str] = (), env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """``reconciler serve`` as a subprocess; stopped with SIGTERM (then SIGKILL) at exit.
    ``serve_args`` are extra ``serve`` options, ``env`` extra environment variables."""
    args = ["--store", str(store_path), "serve", *serve_args]
    if htpasswd is not None:
        args += ["--htpasswd", str(htpasswd)]
    with run_serve_command(args, log_path, workers=workers, env=env) as server:
        yield server


@contextmanager
def run_serve_command(args: list[str], log_path: Path, *, workers: int = 2,
                      env: Mapping[str, str] | None = None) -> Iterator[Server]:
    """``python -m reconciler ARGS --host 127.0.0.1 --port P --workers N`` (ARGS ends with
    ``serve`` and its options), waited for until ``/v2/`` answers; stopped at exit.
    ``env``: extra environment variables."""
    port = free_port()
    cmd = [sys.executable, "-m", "reconciler", *args, "--host", "127.0.0.1", "--port", str(port),
           "--workers", str(workers)]
    env = {**os.environ, **(env or {}),
           "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))}
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env)
    server = Server(f"http://127.0.0.1:{port}", f"127.0.0.1:{port}", proc, log_path)
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                raise AssertionError(f"reconciler serve exited {proc.returncode}:\n{server.log()}")
            try:
                with requests.get(server.url + "/v2/", timeout=2):
                    break
            except requests.ConnectionError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"reconciler serve did not answer in 30 s:\n{server.log()}") from None
                time.sleep(0.1)
        yield server
    finally:
        stop(proc)


def stop(proc: subprocess.Popen[Any]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
    return int(proc.returncode)


def wsgi_call(app: Any, method: str, path: str, *, headers: Mapping[str, str] | None = None,
              query: str = "", remote_addr: str = "127.0.0.1") -> tuple[int, dict[str, str], bytes]:
    """Call a WSGI app in-process: (status, headers, body). Streams bodies fully and
    closes the response iterable as a WSGI server would."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": query, "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": remote_addr, "wsgi.input": io.BytesIO(b""), "SERVER_NAME": "test", "SERVER_PORT": "80",
    }
    for k, v in (headers or {}).items():
        environ["HTTP_" + k.upper().replace("-", "_")] = v
    got: dict[str, Any] = {}

    def start_response(status: str, hdrs: list[tuple[str, str]]) -> None:
        got["status"] = int(status.split()[0])
        got["headers"] = dict(hdrs)

    body_iter = app(environ, start_response)
    try:
        body = b"".join(body_iter)
    finally:
        close = getattr(body_iter, "close", None)
        if close:
            close()
    return got["status"], got["headers"], body
