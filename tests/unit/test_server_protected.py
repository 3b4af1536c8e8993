"""Protected repositories through the WSGI app: no credentials, wrong credentials and
credentials from elsewhere (another htpasswd file's user, an upstream's Bearer token, a
malformed header) get no content at all, on every endpoint; and a protected
repository's blobs and manifests are never served through a public name, unless the
public name's published version holds that same content itself (a shared base layer),
and only for as long as it does."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest

from reconciler.model import mediatypes as mt
from reconciler.server import RegistryApp
from reconciler.server.auth import Htpasswd
from reconciler.store.sqlite import SQLiteStore
from tests.support.imagegen import Image, build_image
from tests.support.serving import commit_tags, wsgi_call

BASE_LAYER = (b"shared base layer",)


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


VALID = basic("alice", "secret")
NO_CONTENT = {
    "anonymous": None,
    "wrong-password": basic("alice", "Secret"),
    "other-htpasswd-user": basic("mallory", "mallory-pass"),  # valid in some other server's file
    "upstream-bearer-token": "Bearer eyJhbGciOiJIUzI1NiJ9.e30.x",
    "empty-password": basic("alice", ""),
    "malformed-basic": "Basic !!!not-base64",
    "basic-without-colon": "Basic " + base64.b64encode(b"alice").decode(),
}


class World:
    def __init__(self, app: RegistryApp, store: SQLiteStore, public: Image, secret: Image) -> None:
        self.app, self.store, self.public, self.secret = app, store, public, secret

    def get(self, path: str, auth: str | None = None, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        headers = {"Accept": mt.ACCEPT_ALL, **({"Authorization": auth} if auth else {})}
        return wsgi_call(self.app, method, path, headers=headers)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    store = SQLiteStore(tmp_path / "store")
    public = build_image("public", shared=BASE_LAYER)
    secret = build_image("secret", shared=BASE_LAYER)
    commit_tags(store, "pub", {"v1": public})
    store.publish("pub", name="team/public", version=1, protected=False)
    commit_tags(store, "sec", {"v1": secret})
    store.publish("sec", name="team/secret", version=1, protected=True)
    pw = tmp_path / "htpasswd"
    pw.write_text("alice:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode() + "\n")
    app = RegistryApp(lambda: SQLiteStore(tmp_path / "store"), htpasswd=Htpasswd(pw))
    yield World(app, store, public, secret)
    app.close()
    store.close()


def _own_blobs(w: World) -> list[str]:
    """The secret image's blobs the public image does not have (its config and own layers)."""
    return sorted(set(w.secret.all_blobs()) - set(w.public.all_blobs()))


@pytest.mark.parametrize("who", list(NO_CONTENT))
def test_no_valid_credentials_no_content(world: World, who: str) -> None:
    auth = NO_CONTENT[who]
    paths = ["/v2/team/secret/tags/list", "/v2/team/secret/manifests/v1",
             f"/v2/team/secret/manifests/{world.secret.digest}",
             *(f"/v2/team/secret/blobs/{d}" for d in world.secret.all_blobs())]
    for path in paths:
        for method in ("GET", "HEAD"):
            status, headers, body = world.get(path, auth, method)
            assert status == 401, (who, path, method, status)
            assert headers["WWW-Authenticate"] == 'Basic realm="reconciler"'
            assert world.secret.manifest.raw not in body and b"secret:" not in body
    # the catalog does not even name it
    status, _, body = world.get("/v2/_catalog", auth)
    assert status == 401 or "team/secret" not in json.loads(body)["repositories"]


def test_valid_credentials_get_the_content(world: World) -> None:
    assert world.get("/v2/team/secret/manifests/v1", VALID)[2] == world.secret.manifest.raw
    for d, data in world.secret.all_blobs().items():
        assert world.get(f"/v2/team/secret/blobs/{d}", VALID)[2] == data
    assert "team/secret" in json.loads(world.get("/v2/_catalog", VALID)[2])["repositories"]


@pytest.mark.parametrize("auth", [None, VALID], ids=["anonymous", "valid-credentials"])
def test_protected_content_is_not_served_through_a_public_name(world: World, auth: str | None) -> None:
    """Valid credentials do not change this: the public name serves what its own
    published version holds, and nothing else."""
    for d in _own_blobs(world):
        for method in ("GET", "HEAD"):
            status, _, body = world.get(f"/v2/team/public/blobs/{d}", auth, method)
            assert status == 404, (d, method)
            assert method == "HEAD" or json.loads(body)["errors"][0]["code"] == "BLOB_UNKNOWN"
    status, _, body = world.get(f"/v2/team/public/manifests/{world.secret.digest}", auth)
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_shared_blob_is_served_publicly_only_while_the_public_version_holds_it(world: World) -> None:
    shared = sorted(set(world.secret.all_blobs()) & set(world.public.all_blobs()))
    assert len(shared) == 1  # the base layer
    status, _, body = world.get(f"/v2/team/public/blobs/{shared[0]}")
    assert status == 200 and body == world.public.all_blobs()[shared[0]]
    # the public repository moves on to an image without that layer: the shared blob is
    # now only in the protected repository, so the public name no longer serves it
    other = build_image("public-v2")
    version = commit_tags(world.store, "pub", {"v2": other})
    world.store.publish("pub", name="team/public", version=version, protected=False)
    status, _, _ = world.get(f"/v2/team/public/blobs/{shared[0]}")
    assert status == 404
    assert world.get(f"/v2/team/secret/blobs/{shared[0]}", VALID)[0] == 200
