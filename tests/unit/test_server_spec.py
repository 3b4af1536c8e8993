"""The registry server against the OCI distribution spec's pull section, in-process (WSGI).

Status codes, headers (Docker-Content-Digest, exact Content-Type, Content-Length, ETag),
error bodies and codes, negotiation, Range, pagination, HEAD, auth, path safety.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import bcrypt
import pytest

from reconciler.model import mediatypes as mt
from reconciler.server import RegistryApp
from reconciler.server.auth import Htpasswd
from reconciler.store.protocol import Store
from reconciler.store.sqlite import SQLiteStore
from tests.support.imagegen import build_image
from tests.support.serving import Fixture, backend_opener, commit_tags, fill_store, wsgi_call

ALL = mt.ACCEPT_ALL


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def served(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
           ) -> Iterator[tuple[RegistryApp, Fixture, Store]]:
    """The app over a filled store, on each backend (the point lookups are SQL)."""
    root = tmp_path_factory.mktemp("srv")
    with backend_opener(request, root) as opener:
        store = opener()
        fx = fill_store(store)
        pw = root / "htpasswd"
        pw.write_text("alice:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode() + "\n")
        app = RegistryApp(opener, htpasswd=Htpasswd(pw))
        yield app, fx, store
        app.close()
        store.close()


def call(app: RegistryApp, method: str, path: str, **kw: Any) -> tuple[int, dict[str, str], bytes]:
    return wsgi_call(app, method, path, **kw)


def errors_of(body: bytes) -> list[str]:
    doc = json.loads(body)
    for e in doc["errors"]:
        assert set(e) <= {"code", "message", "detail"} and isinstance(e["message"], str)
    return [e["code"] for e in doc["errors"]]


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def test_base_endpoint(served: tuple[RegistryApp, Fixture, Store]) -> None:
    app, _, _ = served
    status, headers, body = call(app, "GET", "/v2/", headers={"Authorization": basic("alice", "secret")})
    assert (status, body) == (200, b"{}")
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"
    # anonymous gets the Basic challenge clients need to learn to send credentials
    status, headers, body = call(app, "GET", "/v2/")
    assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="reconciler"'
    assert errors_of(body) == ["UNAUTHORIZED"]


@pytest.mark.parametrize("name,tag", [
    ("test/docker", "latest"), ("test/docker", "v1"), ("test/oci", "v1"), ("test/list", "v1"), ("test/index", "v1"),
])
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_manifest_by_tag_and_digest(served: tuple[RegistryApp, Fixture, Store], name: str, tag: str, method: str) -> None:
    app, fx, _ = served
    m = fx.images[name][tag].manifest
    for ref in (tag, str(m.digest)):
        status, headers, body = call(app, method, f"/v2/{name}/manifests/{ref}", headers={"Accept": ALL})
        assert status == 200
        assert headers["Content-Type"] == m.media_type
        assert headers["Docker-Content-Digest"] == str(m.digest)
        assert headers["Content-Length"] == str(len(m.raw))
        assert headers["ETag"] == f'"{m.digest}"'
        assert body == (m.raw if method == "GET" else b"")


def test_if_none_match_is_not_required_but_etag_is_stable(served: tuple[RegistryApp, Fixture, Store]) -> None:
    app, fx, _ = served
    first = call(app, "GET", "/v2/test/docker/manifests/v1", headers={"Accept": ALL})
    second = call(app, "GET", "/v2/test/docker/manifests/v1", headers={"Accept": ALL})
    assert first[1]["ETag"] == second[1]["ETag"] and first[2] == second[2]


@pytest.mark.parametrize("name,accept,want", [
    # index-unaware client asking for a list tag: Crane's amd64 fallback
    ("test/list", mt.DOCKER_SCHEMA2, "amd64-child"),
    ("test/index", mt.OCI_MANIFEST, "amd64-child"),
    # accepts neither the index nor the child's type
    ("test/index", mt.DOCKER_SCHEMA2, 404),
    ("test/oci", mt.DOCKER_SCHEMA2, 404),
    ("test/docker", mt.OCI_MANIFEST, 404),
    # no Accept, or a wildcard: the stored bytes
    ("test/list", "", "self"),
    ("test/oci", "*/*", "self"),
    ("test/list", f"{mt.DOCKER_MANIFEST_LIST};q=0.5, {mt.DOCKER_SCHEMA2}", "self"),
    # q=0 means "not acceptable" (RFC 9110 12.4.2): the list is refused, the child is fine
    ("test/list", f"{mt.DOCKER_MANIFEST_LIST}; q=0, {mt.DOCKER_SCHEMA2}", "amd64-child"),
    ("test/oci", f"{mt.OCI_INDEX}, {mt.OCI_MANIFEST};Q=0.0", 404),
    ("test/oci", "*/*;q=0", 404),
    ("test/oci", f"*/*;q=0, {mt.OCI_MANIFEST};q=0.1", "self"),
], ids=["list-s2-only", "index-oci-only", "index-s2-only", "oci-s2-only", "docker-oci-only", "no-accept",
        "wildcard", "q-params", "q0-list", "q0-manifest", "q0-wildcard", "q0-wildcard-but-named"])
def test_negotiation(served: tuple[RegistryApp, Fixture, Store], name: str, accept: str, want: object) -> None:
    app, fx, _ = served
    img = fx.images[name]["v1"]
    headers = {"Accept": accept} if accept else {}
    status, hdrs, body = call(app, "GET", f"/v2/{name}/manifests/v1", headers=headers)
    if want == 404:
        assert status == 404 and errors_of(body) == ["MANIFEST_UNKNOWN"]
        return
    expected = img.children[0].manifest if want == "amd64-child" else img.manifest
    assert status == 200 and body == expected.raw
    assert hdrs["Docker-Content-Digest"] == str(expected.digest) and hdrs["Content-Type"] == expected.media_type


def test_index_by_digest_never_falls_back(served: tuple[RegistryApp, Fixture, Store]) -> None:
    app, fx, _ = served
    idx = fx.images["test/list"]["v1"].manifest
    status, _, body = call(app, "GET", f"/v2/test/list/manifests/{idx.digest}", headers={"Accept": mt.DOCKER_SCHEMA2})
    assert status == 404 and errors_of(body) == ["MANIFEST_UNKNOWN"]


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_blob_whole(served: tuple[RegistryApp, Fixture, Store], method: str) -> None:
    app, fx, _ = served
    digest, data = next(iter(fx.images["test/docker"]["v1"].blobs.items()))
    status, headers, body = call(app, method, f"/v2/test/docker/blobs/{digest}")
    assert status == 200
    assert headers["Content-Length"] == str(len(data)) and headers["Docker-Content-Digest"] == digest
    assert headers["Content-Type"] == "application/octet-stream" and headers["ETag"] == f'"{digest}"'
    assert body == (data if method == "GET" else b"")


@pytest.mark.parametrize("rng,expect", [
    ("bytes=0-9", (206, slice(0, 10))),
    ("bytes=10-", (206, slice(10, None))),
    ("bytes=-5", (206, slice(-5, None))),
    ("bytes=3-100000000", (206, slice(3, None))),
    ("bytes=0-0", (206, slice(0, 1))),
    ("bytes=100000000-", (416, None)),
    ("bytes=0-1,5-6", (200, slice(None))),
    ("items=0-5", (200, slice(None))),
    ("bytes=" + "9" * 5000 + "-", (416, None)),
    ("bytes=0-" + "9" * 5000, (206, slice(0, None))),
    ("bytes=-" + "9" * 5000, (206, slice(0, None))),
    ("bytes=" + "0" * 5000 + "3-9", (206, slice(3, 10))),
], ids=["first10", "from10", "suffix5", "past-end", "one-byte", "unsatisfiable", "multi-ignored", "unit-ignored",
        "huge-first", "huge-last", "huge-suffix", "leading-zeros"])
def test_blob_range(served: tuple[RegistryApp, Fixture, Store], rng: str, expect: tuple[int, slice | None]) -> None:
    app, fx, _ = served
    digest, data = max(fx.images["test/docker"]["v1"].blobs.items(), key=lambda kv: len(kv[1]))
    status, headers, body = call(app, "GET", f"/v2/test/docker/blobs/{digest}", headers={"Range": rng})
    want_status, window = expect
    assert status == want_status
    if status == 416:
        assert headers["Content-Range"] == f"bytes */{len(data)}"
        return
    assert window is not None  # the table gives one for every status but 416
    assert body == data[window] and headers["Content-Length"] == str(len(body))
    if status == 206:
        first = data.index(body) if window.start is None or window.start >= 0 else len(data) + window.start
        assert headers["Content-Range"] == f"bytes {first}-{first + len(body) - 1}/{len(data)}"


@pytest.mark.parametrize("method,path,status,code", [
    ("GET", "/v2/nope/manifests/v1", 404, "NAME_UNKNOWN"),
    ("GET", "/v2/hidden/manifests/v1", 404, "NAME_UNKNOWN"),       # in the store but never published
    ("GET", "/v2/test/docker/manifests/nope", 404, "MANIFEST_UNKNOWN"),
    ("GET", "/v2/test/docker/manifests/sha256:" + "0" * 64, 404, "MANIFEST_UNKNOWN"),
    ("GET", "/v2/test/docker/manifests/sha256:abc", 400, "DIGEST_INVALID"),
    ("GET", "/v2/test/docker/blobs/sha256:" + "0" * 64, 404, "BLOB_UNKNOWN"),
    ("GET", "/v2/test/docker/blobs/latest", 400, "DIGEST_INVALID"),
    ("GET", "/v2/test/docker/blobs/md5:" + "0" * 32, 400, "DIGEST_INVALID"),
    ("GET", "/v2/Test/Docker/tags/list", 400, "NAME_INVALID"),
    ("GET", "/v2/nope/tags/list", 404, "NAME_UNKNOWN"),
    ("PUT", "/v2/test/docker/manifests/v9", 405, "UNSUPPORTED"),
    ("DELETE", "/v2/test/docker/manifests/v1", 405, "UNSUPPORTED"),
    ("POST", "/v2/test/docker/blobs/uploads/", 405, "UNSUPPORTED"),
    ("PATCH", "/v2/test/docker/blobs/uploads/abc", 405, "UNSUPPORTED"),
    ("GET", "/v2/test/docker/blobs/uploads/abc", 405, "UNSUPPORTED"),
    ("GET", "/v2/test/secret/manifests/v1", 401, "UNAUTHORIZED"),
    ("GET", "/v2/test/secret/tags/list", 401, "UNAUTHORIZED"),
], ids=lambda v: v if isinstance(v, str) and v.isupper() else None)
def test_errors(served: tuple[RegistryApp, Fixture, Store], method: str, path: str, status: int, code: str) -> None:
    app, _, _ = served
    got, headers, body = call(app, method, path, headers={"Accept": ALL})
    assert got == status and errors_of(body) == [code]
    assert headers["Content-Type"] == "application/json"
    if status == 405 and method != "GET":
        assert headers["Allow"] == "GET, HEAD"
    if status == 401:
        assert headers["WWW-Authenticate"].startswith("Basic realm=")


def test_head_errors_have_no_body(served: tuple[RegistryApp, Fixture, Store]) -> None:
    app, _, _ = served
    status, headers, body = call(app, "HEAD", "/v2/test/docker/manifests/nope")
    assert status == 404 and body == b"" and int(headers["Content-Length"]) > 0


@pytest.mark.parametrize("path", [
    "/v2/../../etc/passwd/manifests/latest",
    "/v2/test/../docker/manifests/latest",
    "/v2/test/%2e%2e/docker/manifests/latest",
    "/v2//etc/passwd/blobs/sha256:" + "a" * 64,
    "/v2/test/docker/./manifests/latest",
    "/v2/test/docker/blobs/sha256:../../../../etc/passwd",
    "/v2/test/docker/blobs/sha256:" + "a" * 63 + "/",
    "/v2/test/docker/blobs/sha256:" + "A" * 64,
    "/v2/test/docker/manifests/..",
    "/v2/test/docker/manifests/%2e%2e",
    "/etc/passwd",
    "/v2/test/docker/blobs/" + "/etc/passwd",
    # a newline (%0a, decoded by the WSGI server) after a valid part: matched in full or not at all
    "/v2/test/docker/manifests/latest\n",
    "/v2/test/docker\n/tags/list",
    "/v2/test/docker/blobs/sha256:" + "a" * 64 + "\n",
    "/v2/test/docker/tags/list\n",
    "/v2/test/docker/blobs/uploads/\n",
])
def test_path_safety(served: tuple[RegistryApp, Fixture, Store], path: str) -> None:
    """Nothing outside the published content is ever served; every such path is an
    OCI error (the WSGI server has already decoded %2e, so it arrives as '.')."""
    app, _, _ = served
    status, headers, body = call(app, "GET", path.replace("%2e", "."), headers={"Accept": ALL})
    assert status in (400, 404, 405)
    assert errors_of(body)[0] in {"NAME_INVALID", "NAME_UNKNOWN", "DIGEST_INVALID", "MANIFEST_UNKNOWN",
                                  "BLOB_UNKNOWN", "NOT_FOUND", "UNSUPPORTED"}
    assert b"root:" not in body


def test_blob_only_under_a_name_whose_version_holds_it(served: tuple[RegistryApp, Fixture, Store]) -> None:
    app, fx, _ = served
    secret_blob = next(iter(fx.images["test/secret"]["v1"].blobs))
    status, _, body = call(app, "GET", f"/v2/test/docker/blobs/{secret_blob}")
    assert status == 404 and errors_of(body) == ["BLOB_UNKNOWN"]
    secret_manifest = fx.images["test/secret"]["v1"].digest
    status, _, _ = call(app, "GET", f"/v2/test/docker/manifests/{secret_manifest}", headers={"Accept": ALL})
    assert status == 404


@pytest.mark.parametrize("auth,status", [
    (None, 401), (basic("alice", "wrong"), 401), (basic("bob", "secret"), 401), ("Bearer abc", 401),
    (basic("alice", "secret"), 200),
], ids=["anonymous", "wrong-password", "unknown-user", "bearer", "valid"])
def test_protected_repository(served: tuple[RegistryApp, Fixture, Store], auth: str | None, status: int) -> None:
    app, fx, _ = served
    headers = {"Accept": ALL, **({"Authorization": auth} if auth else {})}
    got, hdrs, body = call(app, "GET", "/v2/test/secret/manifests/v1", headers=headers)
    assert got == status
    if status == 200:
        assert body == fx.images["test/secret"]["v1"].manifest.raw
    else:
        assert hdrs["WWW-Authenticate"] == 'Basic realm="reconciler"'


def test_wrong_credentials_are_refused_even_for_public_names(served: tuple[RegistryApp, Fixture, Store]) -> None:
    app, _, _ = served
    status, _, _ = call(app, "GET", "/v2/test/docker/tags/list", headers={"Authorization": basic("alice", "x")})
    assert status == 401
    # an empty user after a Basic challenge means anonymous (containers/image sends it)
    status, _, _ = call(app, "GET", "/v2/test/docker/tags/list", headers={"Authorization": basic("", "")})
    assert status == 200


def test_protected_without_user_list_is_denied(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "s")
    commit_tags(store, "r", {"v1": build_image("r")})
    store.publish("r", name="r", version=1, protected=True)
    app = RegistryApp(lambda: SQLiteStore(tmp_path / "s"))
    try:
        status, _, body = call(app, "GET", "/v2/r/tags/list")
        assert status == 403 and errors_of(body) == ["DENIED"]
        assert call(app, "GET", "/v2/")[0] == 200
    finally:
        app.close()
        store.close()


@pytest.mark.parametrize("query,tags,link", [
    ("", ["a", "b", "c", "d", "e"], None),
    ("n=2", ["a", "b"], "/v2/pg/tags/list?n=2&last=b"),
    ("n=2&last=b", ["c", "d"], "/v2/pg/tags/list?n=2&last=d"),
    ("n=2&last=d", ["e"], None),
    ("n=5", ["a", "b", "c", "d", "e"], None),
    ("last=c", ["d", "e"], None),
    ("n=0", [], None),
    ("n=2&last=zz", [], None),
])
def test_tags_pagination(tmp_path: Path, query: str, tags: list[str], link: str | None) -> None:
    store = SQLiteStore(tmp_path / "s")
    img = build_image("pg")
    commit_tags(store, "pg", {t: img for t in "ecabd"})
    store.publish("pg", name="pg", version=1, protected=False)
    app = RegistryApp(lambda: SQLiteStore(tmp_path / "s"))
    try:
        status, headers, body = call(app, "GET", "/v2/pg/tags/list", query=query)
        assert status == 200 and json.loads(body) == {"name": "pg", "tags": tags}
        assert headers.get("Link") == (f'<{link}>; rel="next"' if link else None)
        assert call(app, "GET", "/v2/pg/tags/list", query="n=-1")[0] == 400
        assert errors_of(call(app, "GET", "/v2/pg/tags/list", query="n=x")[2]) == ["PAGINATION_NUMBER_INVALID"]
        # characters str.isdigit() accepts but int() does not (superscript two), and non-ASCII digits
        for odd in ("n=%C2%B2", "n=%D9%A2"):
            assert errors_of(call(app, "GET", "/v2/pg/tags/list", query=odd)[2]) == ["PAGINATION_NUMBER_INVALID"]
    finally:
        app.close()
        store.close()


def test_catalog_pagination_and_visibility(served: tuple[RegistryApp, Fixture, Store]) -> None:
    app, _, _ = served
    public = ["test/docker", "test/index", "test/list", "test/oci"]
    status, headers, body = call(app, "GET", "/v2/_catalog")
    assert status == 200 and json.loads(body) == {"repositories": public}
    status, headers, body = call(app, "GET", "/v2/_catalog", query="n=3")
    assert json.loads(body)["repositories"] == public[:3]
    assert headers["Link"] == '</v2/_catalog?n=3&last=test%2Flist>; rel="next"'
    status, headers, body = call(app, "GET", "/v2/_catalog", query="n=3&last=test/list")
    assert json.loads(body)["repositories"] == ["test/oci"] and "Link" not in headers
    authed = call(app, "GET", "/v2/_catalog", headers={"Authorization": basic("alice", "secret")})
    assert json.loads(authed[2])["repositories"] == sorted(public + ["test/secret"])


def test_publish_switch_and_unpublish_are_seen_immediately(served: tuple[RegistryApp, Fixture, Store]) -> None:
    app, fx, store = served
    old = fx.images["test/oci"]["v1"]
    new = build_image("oci-v2", oci=True)
    version = commit_tags(store, "oci", {"v1": new})
    store.publish("oci", name="test/oci", version=version, protected=False)
    assert call(app, "GET", "/v2/test/oci/manifests/v1", headers={"Accept": ALL})[2] == new.manifest.raw
    store.publish("oci", name="test/oci", version=version - 1, protected=False)  # rollback
    assert call(app, "GET", "/v2/test/oci/manifests/v1", headers={"Accept": ALL})[2] == old.manifest.raw
    store.unpublish("oci")
    assert call(app, "GET", "/v2/test/oci/manifests/v1", headers={"Accept": ALL})[0] == 404
    store.publish("oci", name="test/oci", version=version - 1, protected=False)


def test_access_log_line(served: tuple[RegistryApp, Fixture, Store], caplog: pytest.LogCaptureFixture) -> None:
    app, fx, _ = served
    digest = next(iter(fx.images["test/docker"]["v1"].blobs))
    with caplog.at_level(logging.INFO, logger="reconciler.server.access"):
        call(app, "GET", f"/v2/test/docker/blobs/{digest}", headers={"User-Agent": "ua/1"})
        call(app, "GET", "/v2/test/secret/tags/list", headers={"Authorization": basic("alice", "secret")})
    lines = [r.getMessage() for r in caplog.records if r.name == "reconciler.server.access"]
    size = len(fx.images["test/docker"]["v1"].blobs[digest])
    assert f'"GET /v2/test/docker/blobs/{digest} HTTP/1.1" 200 {size} "-" "ua/1"' in lines[0]
    assert lines[1].startswith("127.0.0.1 - alice [")


@pytest.mark.parametrize("name", ["a/manifests/b", "x/blobs", "t/tags/list", "manifests", "m/blobs/manifests/tags"])
def test_names_with_route_keywords_split_at_the_right_most(tmp_path: Path, name: str) -> None:
    """A name may contain manifests, blobs or tags/list as components; the route keyword
    is the right-most one (as Crane and the distribution registry split)."""
    store = SQLiteStore(tmp_path / "s")
    img = build_image("kw")
    commit_tags(store, "kw", {"v1": img})
    store.publish("kw", name=name, version=1, protected=False)
    app = RegistryApp(lambda: SQLiteStore(tmp_path / "s"))
    try:
        status, _, body = call(app, "GET", f"/v2/{name}/manifests/v1", headers={"Accept": ALL})
        assert status == 200 and body == img.manifest.raw
        status, _, body = call(app, "GET", f"/v2/{name}/tags/list")
        assert status == 200 and json.loads(body) == {"name": name, "tags": ["v1"]}
        digest, data = next(iter(img.blobs.items()))
        status, _, body = call(app, "GET", f"/v2/{name}/blobs/{digest}")
        assert status == 200 and body == data
    finally:
        app.close()
        store.close()
