"""``reconciler serve`` (a real gunicorn process) against hostile requests sent as raw
bytes, so no client library normalises them first: traversal in names and digests
(``..``, ``%2e%2e``, ``%2f``, double-encoded), invalid digests, oversized request lines
and headers, and every write method. A secret file is planted next to the store and,
under its own digest, inside the store's blob directory (as if written there behind the
store's back): it is never served. No request gets a 5xx, and the server logs no
traceback."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from reconciler.model import Digest
from reconciler.store.sqlite import SQLiteStore
from tests.support.narrow import narrow
from tests.support.serving import Fixture, Server, fill_store, raw_http, run_server

pytestmark = pytest.mark.integration

SECRET = b"TOP-SECRET-do-not-serve-4f1c"
SECRET_HEX = hashlib.sha256(SECRET).hexdigest()


@pytest.fixture(scope="module")
def hostile_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Fixture, Path]]:
    root = tmp_path_factory.mktemp("hostile")
    store = SQLiteStore(root / "store")
    try:
        fx = fill_store(store)
        planted = narrow(Path, store.blob_files.path(store_digest(SECRET_HEX)))  # local blobs: a file
    finally:
        store.close()
    (root / "secret.txt").write_bytes(SECRET)  # next to the store
    (root / "store" / "secret.txt").write_bytes(SECRET)  # inside its root
    planted.parent.mkdir(parents=True, exist_ok=True)
    planted.write_bytes(SECRET)  # where a blob with that digest would live, but no row says so
    pw = root / "htpasswd"
    pw.write_text("alice:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode() + "\n")
    with run_server(root / "store", root / "serve.log", htpasswd=pw, workers=1) as server:
        yield server, fx, root


def store_digest(hexpart: str) -> Digest:
    return Digest.parse(f"sha256:{hexpart}")


def raw_request(server: Server, request_line: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    """Send exactly these bytes; (status, body). The connection is closed after."""
    status, _, body = raw_http(server.host, request_line, headers)
    return status, body


TRAVERSAL = [
    "/v2/../secret.txt",
    "/v2/test/docker/blobs/../../../secret.txt",
    "/v2/test/docker/blobs/%2e%2e/%2e%2e/%2e%2e/secret.txt",
    "/v2/test/docker/blobs/%2E%2E%2F%2E%2E%2Fsecret.txt",
    "/v2/test/docker/blobs/sha256:..%2f..%2f..%2fsecret.txt",
    "/v2/test/docker/blobs/sha256:%252e%252e%252f%252e%252e%252fsecret.txt",
    "/v2/test/docker/manifests/..%2f..%2f..%2fsecret.txt",
    "/v2/test/docker/manifests/%252e%252e%252fsecret.txt",
    "/v2/..%2f..%2fsecret.txt/tags/list",
    "/v2/%2e%2e/%2e%2e/blobs/sha256:" + SECRET_HEX,
    "/v2/test%2f..%2f..%2fsecret.txt/manifests/latest",
    "/%2e%2e/%2e%2e/secret.txt",
    "/v2/test/docker/blobs/sha256:" + SECRET_HEX,  # the planted file's own digest
    "/v2/test/docker/blobs/sha256:" + SECRET_HEX + "/../../secret.txt",
    "/v2/test/docker/blobs/secret.txt",
    "/secret.txt",
    "/store/secret.txt",
    "/v2/test/docker/blobs/sha256:" + SECRET_HEX + "%00",
    "/v2/test/docker/blobs/sha256:" + SECRET_HEX + "%0a",
]

INVALID_DIGESTS = [
    "sha256:abc", "sha256:" + "a" * 128, "sha512:" + "a" * 64, "md5:" + "0" * 32, "sha256:" + "A" * 64,
    "sha256:" + "g" * 64, "sha256", ":" + "a" * 64, "sha256::" + "a" * 64, "SHA256:" + "a" * 64,
]


def assert_clean(server: Server, status: int, body: bytes) -> None:
    assert status < 500, body[:300]
    assert SECRET not in body


@pytest.mark.parametrize("path", TRAVERSAL)
def test_traversal_never_reaches_a_file(hostile_server: tuple[Server, Fixture, Path], path: str) -> None:
    server, _, _ = hostile_server
    for method in ("GET", "HEAD"):
        status, body = raw_request(server, f"{method} {path} HTTP/1.1")
        assert_clean(server, status, body)
        assert status in (400, 404), (path, status, body[:200])


@pytest.mark.parametrize("digest", INVALID_DIGESTS)
def test_invalid_digests_are_digest_invalid(hostile_server: tuple[Server, Fixture, Path], digest: str) -> None:
    server, _, _ = hostile_server
    for kind in ("blobs", "manifests"):
        status, body = raw_request(server, f"GET /v2/test/docker/{kind}/{digest} HTTP/1.1")
        assert_clean(server, status, body)
        if kind == "blobs" or ":" in digest:
            assert status == 400 and json.loads(body)["errors"][0]["code"] == "DIGEST_INVALID", (kind, digest)
        else:  # no colon: a tag name, and not a valid one
            assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"


@pytest.mark.parametrize("method", ["PUT", "POST", "PATCH", "DELETE"])
@pytest.mark.parametrize("path", ["/v2/test/docker/manifests/latest", "/v2/test/docker/blobs/uploads/",
                                  "/v2/test/docker/blobs/uploads/abc?digest=sha256:" + SECRET_HEX,
                                  "/v2/test/docker/blobs/sha256:" + SECRET_HEX, "/v2/", "/v2/_catalog",
                                  "/v2/newrepo/manifests/v1"])
def test_writes_are_unsupported(hostile_server: tuple[Server, Fixture, Path], method: str, path: str) -> None:
    server, _, _ = hostile_server
    status, body = raw_request(server, f"{method} {path} HTTP/1.1", {"Content-Length": "0"})
    assert status == 405 and json.loads(body)["errors"][0]["code"] == "UNSUPPORTED"


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "CONNECT", "PROPFIND", "FOO"])
def test_other_methods_are_refused_cleanly(hostile_server: tuple[Server, Fixture, Path], method: str) -> None:
    server, _, _ = hostile_server
    status, body = raw_request(server, f"{method} /v2/test/docker/manifests/latest HTTP/1.1")
    assert_clean(server, status, body)
    assert 400 <= status < 500


@pytest.mark.parametrize("what", ["header-value", "many-headers", "request-line", "auth-header"])
def test_oversized_requests_are_refused_by_gunicorn(hostile_server: tuple[Server, Fixture, Path], what: str) -> None:
    server, _, _ = hostile_server
    line, headers = "GET /v2/test/docker/tags/list HTTP/1.1", {}
    if what == "header-value":
        headers = {"X-Big": "a" * 100_000}
    elif what == "many-headers":
        headers = {f"X-H{i}": "v" for i in range(500)}
    elif what == "request-line":
        line = "GET /v2/" + "a/" * 10_000 + "tags/list HTTP/1.1"
    else:
        headers = {"Authorization": "Basic " + "QUFB" * 30_000}
    status, body = raw_request(server, line, headers)
    assert_clean(server, status, body)
    assert status in (400, 414, 431)
    # the worker is still serving afterwards
    assert raw_request(server, "GET /v2/test/docker/tags/list HTTP/1.1")[0] == 200


@pytest.mark.parametrize("query", ["n=-1", "n=abc", "n=" + "9" * 40, "n=1e9", "last=%00", "n=1&n=2",
                                   "last=" + "z" * 3000, "last=..%2f..%2fsecret.txt"])
def test_hostile_pagination_queries(hostile_server: tuple[Server, Fixture, Path], query: str) -> None:
    server, _, _ = hostile_server
    for path in ("/v2/_catalog", "/v2/test/docker/tags/list"):
        status, body = raw_request(server, f"GET {path}?{query} HTTP/1.1")
        assert_clean(server, status, body)
        assert status == 200 or json.loads(body)["errors"][0]["code"] == "PAGINATION_NUMBER_INVALID"


@pytest.mark.parametrize("rng", ["bytes=0-99999999999999999999999", "bytes=-0", "bytes=5-1", "bytes=-",
                                 "bytes=" + ",".join(["0-0"] * 500), "bytes=abc", "items=0-1", "bytes=0--1"])
def test_hostile_range_headers(hostile_server: tuple[Server, Fixture, Path], rng: str) -> None:
    server, fx, _ = hostile_server
    digest, data = next(iter(fx.images["test/docker"]["v1"].blobs.items()))
    status, body = raw_request(server, f"GET /v2/test/docker/blobs/{digest} HTTP/1.1", {"Range": rng})
    assert_clean(server, status, body)
    assert status in (200, 206, 416)
    if status == 200:
        assert body == data


@pytest.mark.parametrize("path", [
    "/v2/test/docker/manifests/latest%0a", "/v2/test/docker/manifests/latest%0d%0aX-Injected:%201",
    "/v2/test/docker%0a/tags/list", "/v2/test/docker/tags/list%0a",
    "/v1/repositories/test/docker/tags/latest%0a",
])
def test_a_newline_after_a_valid_part_is_refused(hostile_server: tuple[Server, Fixture, Path], path: str) -> None:
    """Patterns match whole names, tags and digests (``$`` alone also matches before a
    trailing newline, which then reached lookups and headers)."""
    server, _, _ = hostile_server
    status, body = raw_request(server, f"GET {path} HTTP/1.1")
    assert_clean(server, status, body)
    assert status in (400, 404), (path, status, body[:200])


@pytest.mark.parametrize("script_name", ["/v2/x", "/elsewhere"], ids=["prefix", "mismatch"])
def test_script_name_headers_are_ignored(hostile_server: tuple[Server, Fixture, Path], script_name: str) -> None:
    """gunicorn let loopback peers set SCRIPT_NAME, rewriting the path the application
    sees (past a proxy that only exposes /v2/), or failing with a 500 when it did not fit."""
    server, _, _ = hostile_server
    status, body = raw_request(server, "GET /v2/x/v2/test/docker/tags/list HTTP/1.1", {"SCRIPT_NAME": script_name})
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "NAME_UNKNOWN", (status, body[:200])
    status, body = raw_request(server, "GET /v2/test/docker/tags/list HTTP/1.1", {"SCRIPT_NAME": script_name})
    assert status == 200 and json.loads(body)["name"] == "test/docker"


def test_credentials_in_an_absolute_form_target_are_not_logged(hostile_server: tuple[Server, Fixture, Path]) -> None:
    server, _, _ = hostile_server
    status, _ = raw_request(server, "GET http://alice:alicepw@example.com/v2/test/docker/tags/list HTTP/1.1")
    assert status == 200
    log = server.log()
    assert "alicepw" not in log and '"GET http://***@example.com/v2/test/docker/tags/list HTTP/1.1" 200' in log


def test_the_server_logged_no_traceback(hostile_server: tuple[Server, Fixture, Path]) -> None:
    """Runs after the others in this module (file order): nothing above was a crash."""
    server, _, _ = hostile_server
    raw_request(server, "GET /v2/test/docker/blobs/sha256:" + "%00" * 64 + " HTTP/1.1")
    log = server.log()
    assert "Traceback" not in log and "internal error" not in log
    assert server.proc.poll() is None
