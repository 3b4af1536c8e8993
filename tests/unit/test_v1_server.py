"""The v1 pull API of ``reconciler serve`` (in-process WSGI): Crane's routes and headers,
published names only, protection, and the files byte for byte."""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Iterator

import bcrypt
import pytest

from reconciler.ops.publish import publish
from reconciler.ops.v1.upload import upload_v1
from reconciler.server.app import RegistryApp
from reconciler.server.auth import Htpasswd
from reconciler.store.sqlite import SQLiteStore
from tests.support.serving import backend_opener, wsgi_call
from tests.support.v1images import build_chain, v1_save_tar

CHAIN = build_chain("busybox", tags={"latest": 4, "base": 1})
SECRET = build_chain("secret", length=2)


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def app(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryApp]:
    """The app over a store with v1 images, on each backend (the v1 lookups are SQL)."""
    root = tmp_path_factory.mktemp("v1srv")
    with backend_opener(request, root) as opener:
        store = opener()
        upload_v1(store, "busybox", v1_save_tar(root / "b.tar", CHAIN))
        publish(store, "busybox", name="pulpdemo/busybox")
        upload_v1(store, "secret", v1_save_tar(root / "s.tar", SECRET))
        publish(store, "secret", name="secret", protected=True)
        upload_v1(store, "unpublished", v1_save_tar(root / "u.tar", build_chain("unpublished", length=1)))
        store.repository_create("nov1")
        publish(store, "nov1", name="nov1")
        store.close()
        pw = root / "htpasswd"
        pw.write_text("alice:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode() + "\n")
        application = RegistryApp(opener, htpasswd=Htpasswd(pw))
        yield application
        application.close()


ALICE = {"Authorization": "Basic " + base64.b64encode(b"alice:secret").decode()}


def test_ping_answers_true_with_the_registry_headers(app: RegistryApp) -> None:
    status, headers, body = wsgi_call(app, "GET", "/v1/_ping")
    assert (status, json.loads(body)) == (200, True)
    assert headers["X-Docker-Registry-Standalone"] == "True"
    assert headers["X-Docker-Registry-Version"] == "0.6.6"
    assert headers["X-Docker-Registry-Config"] == "common"


@pytest.mark.parametrize(("method", "headers", "status"), [
    ("POST", {}, 405),
    ("GET", {"Authorization": "Basic " + base64.b64encode(b"alice:wrong").decode()}, 401),
], ids=["write-method", "wrong-password"])
def test_v1_errors_before_routing_are_v1_errors(app: RegistryApp, method: str, headers: dict[str, str],
                                                status: int) -> None:
    """The read-only and credential checks come before the v1 routes too, but answer in
    the v1 API's plain text with its headers, not the v2 API's JSON and version header."""
    got, reply_headers, body = wsgi_call(app, method, "/v1/_ping", headers=headers)
    assert got == status
    assert reply_headers["Content-Type"].startswith("text/plain") and not body.startswith(b"{")
    assert reply_headers["X-Docker-Registry-Version"] == "0.6.6"
    assert "Docker-Distribution-API-Version" not in reply_headers


def test_images_and_tags_of_a_published_repository(app: RegistryApp) -> None:
    name = "pulpdemo/busybox"
    status, headers, body = wsgi_call(app, "GET", f"/v1/repositories/{name}/images", headers={"Host": "reg:5000"})
    assert status == 200 and headers["X-Docker-Endpoints"] == "reg:5000"
    assert sorted(i["id"] for i in json.loads(body)) == sorted(CHAIN.ids)
    status, _, body = wsgi_call(app, "GET", f"/v1/repositories/{name}/tags")
    assert json.loads(body) == {"base": CHAIN.ids[1], "latest": CHAIN.leaf}
    status, _, body = wsgi_call(app, "GET", f"/v1/repositories/{name}/tags/latest")
    assert (status, json.loads(body)) == (200, CHAIN.leaf)


def test_library_prefix_is_dropped(app: RegistryApp) -> None:
    status, _, _ = wsgi_call(app, "GET", "/v1/repositories/library/nov1/tags")
    assert status == 404  # found the name, but it has no v1 side (same answer as unknown)
    status, _, _ = wsgi_call(app, "GET", "/v1/repositories/library/pulpdemo/busybox/tags")
    assert status == 404  # more than one '/' after dropping library/ is unknown


@pytest.mark.parametrize("path", [
    "/v1/repositories/pulpdemo/busybox/tags/nope",
    "/v1/repositories/unpublished/tags",
    "/v1/repositories/nov1/images",
    "/v1/repositories/a/b/c/tags",
    "/v1/images/" + "0" * 64 + "/json",
    "/v1/images/" + CHAIN.leaf + "/other",
    "/v1/images/../json",
], ids=["unknown-tag", "unpublished", "no-v1-content", "two-slashes", "unknown-image", "unknown-file", "traversal"])
def test_unknown_things_are_404_plain_text(app: RegistryApp, path: str) -> None:
    status, headers, _ = wsgi_call(app, "GET", path)
    assert status == 404
    assert headers["Content-Type"].startswith("text/plain")
    assert headers["X-Docker-Registry-Version"] == "0.6.6"


def test_image_files_byte_for_byte(app: RegistryApp) -> None:
    leaf = CHAIN.leaf
    status, headers, body = wsgi_call(app, "GET", f"/v1/images/{leaf}/json")
    assert status == 200 and body == CHAIN.jsons[leaf]
    assert headers["X-Docker-Size"] == str(json.loads(CHAIN.jsons[leaf])["Size"])
    _, _, body = wsgi_call(app, "GET", f"/v1/images/{leaf}/ancestry")
    assert json.loads(body) == CHAIN.ancestry(leaf)
    status, headers, body = wsgi_call(app, "GET", f"/v1/images/{leaf}/layer")
    assert status == 200 and headers["Content-Length"] == str(len(body))
    assert gzip.decompress(body) == CHAIN.layers[leaf]


def test_images_of_unpublished_repositories_are_not_served(app: RegistryApp) -> None:
    unpublished = build_chain("unpublished", length=1)
    assert wsgi_call(app, "GET", f"/v1/images/{unpublished.leaf}/json")[0] == 404


def test_protected_repository_needs_credentials(app: RegistryApp) -> None:
    status, headers, _ = wsgi_call(app, "GET", "/v1/repositories/secret/tags")
    assert status == 401 and headers["WWW-Authenticate"].startswith("Basic ")
    assert wsgi_call(app, "GET", f"/v1/images/{SECRET.leaf}/json")[0] == 404
    status, _, body = wsgi_call(app, "GET", "/v1/repositories/secret/tags", headers=ALICE)
    assert (status, json.loads(body)) == (200, {"latest": SECRET.leaf})
    assert wsgi_call(app, "GET", f"/v1/images/{SECRET.leaf}/json", headers=ALICE)[0] == 200


def test_head_has_no_body_and_writes_are_refused(app: RegistryApp) -> None:
    status, headers, body = wsgi_call(app, "HEAD", f"/v1/images/{CHAIN.leaf}/layer")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert wsgi_call(app, "PUT", "/v1/repositories/pulpdemo/busybox/tags/x")[0] == 405


@pytest.fixture(scope="module")
def granted_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryApp]:
    """``serve --access``: alice may read the protected ``secret``; bob is a valid user
    without that right."""
    from reconciler.server.access import load_access

    root = tmp_path_factory.mktemp("v1access")
    store = SQLiteStore(root / "store")
    upload_v1(store, "secret", v1_save_tar(root / "s.tar", SECRET))
    publish(store, "secret", name="secret", protected=True)
    store.close()
    pw = root / "htpasswd"
    pw.write_text("".join(f"{u}:{bcrypt.hashpw(b'secret', bcrypt.gensalt(4)).decode()}\n" for u in ("alice", "bob")))
    (root / "access.yaml").write_text("repositories:\n  secret: [alice]\n")
    users = Htpasswd(pw)
    application = RegistryApp(lambda: SQLiteStore(root / "store"), htpasswd=users,
                              access=load_access(root / "access.yaml", users.users()))
    yield application
    application.close()


BOB = {"Authorization": "Basic " + base64.b64encode(b"bob:secret").decode()}


@pytest.mark.parametrize("path", ["/v1/repositories/{name}/tags", "/v1/repositories/{name}/images",
                                  "/v1/repositories/{name}/tags/latest", "/v1/repositories/library/{name}/tags"])
def test_v1_user_without_the_right_gets_the_answer_of_a_missing_name(granted_app: RegistryApp, path: str) -> None:
    hidden = wsgi_call(granted_app, "GET", path.format(name="secret"), headers=BOB)
    missing = wsgi_call(granted_app, "GET", path.format(name="secreu"), headers=BOB)
    assert hidden[0] == 404 and hidden == missing
    assert wsgi_call(granted_app, "GET", path.format(name="secret"), headers=ALICE)[0] == 200


@pytest.mark.parametrize("file", ["ancestry", "json", "layer"])
def test_v1_image_files_only_for_a_granted_user(granted_app: RegistryApp, file: str) -> None:
    assert wsgi_call(granted_app, "GET", f"/v1/images/{SECRET.leaf}/{file}", headers=BOB)[0] == 404
    assert wsgi_call(granted_app, "GET", f"/v1/images/{SECRET.leaf}/{file}", headers=ALICE)[0] == 200
