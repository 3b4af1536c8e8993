"""Protected repositories through the WSGI app: no credentials, wrong credentials and
credentials from elsewhere (another htpasswd file's user, an upstream's Bearer token, a
malformed header) get no content at all, on every endpoint; and a protected
repository's blobs and manifests are never served through a public name, unless the
public name's published version holds that same content itself (a shared base layer),
and only for as long as it does. With ``--access``, credentials valid for another
repository get no content either, and exactly the answer of a name that does not exist."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator, Mapping
from pathlib import Path

import bcrypt
import pytest

from reconciler.model import mediatypes as mt
from reconciler.server import RegistryApp
from reconciler.server.access import load_access
from reconciler.server.auth import Htpasswd
from reconciler.server.logins import LoginGuard
from reconciler.server.throttle import Rate
from reconciler.store.sqlite import SQLiteStore
from tests.support.imagegen import Image, build_image
from tests.support.serving import commit_tags, wsgi_call

BASE_LAYER = (b"shared base layer",)
UNTHROTTLED = Rate(capacity=10**6, per_second=10**6)


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
    # these tests send dozens of wrong passwords from one address on purpose; the
    # throttle that would answer most of them 429 has tests of its own (test_server_logins.py)
    assert app.logins is not None
    app.logins = LoginGuard(app.logins.htpasswd, address_rate=UNTHROTTLED, user_rate=UNTHROTTLED)
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


def test_shared_blob_is_served_publicly_only_while_the_public_version_holds_it(
        world: World, monkeypatch: pytest.MonkeyPatch) -> None:
    # no grace period (reconciler/store/sql/grace.py): the move ends the old version's serving at once
    monkeypatch.setenv("RECONCILER_PUBLISH_GRACE", "0")
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


# -- per-repository access (serve --access) -------------------------------------------------

ACCESS_YAML = """\
# prod/* is alice's; bob may read team-b/* only; carol is a valid user with no grant
repositories:
  prod/*: [alice]
  team-b/*: [bob]
"""
PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw", "carol": "carol-pw"}
WHO = {"anonymous": None, **{u: basic(u, pw) for u, pw in PASSWORDS.items()}}
#: who gets what on each name: 200 content, 401 challenge, 404 as if the name did not exist
EXPECT = {
    "prod/app": {"anonymous": 401, "alice": 200, "bob": 404, "carol": 404},
    "team-b/app": {"anonymous": 401, "alice": 404, "bob": 200, "carol": 404},
    "pub/base": {"anonymous": 200, "alice": 200, "bob": 200, "carol": 200},
}


class Granted:
    def __init__(self, app: RegistryApp, images: Mapping[str, Image]) -> None:
        self.app, self.images = app, images

    def get(self, path: str, who: str, method: str = "GET") -> tuple[int, dict[str, str], bytes]:
        auth = WHO[who]
        headers = {"Accept": mt.ACCEPT_ALL, **({"Authorization": auth} if auth else {})}
        return wsgi_call(self.app, method, path, headers=headers)


@pytest.fixture(scope="module")
def granted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Granted]:
    root = tmp_path_factory.mktemp("granted")
    images = {"prod/app": build_image("prod-app", shared=BASE_LAYER),
              "team-b/app": build_image("team-b-app", shared=BASE_LAYER),
              "pub/base": build_image("pub-base")}
    store = SQLiteStore(root / "store")
    try:
        for name, image in images.items():
            repo_id = name.replace("/", "-")
            commit_tags(store, repo_id, {"v1": image})
            store.publish(repo_id, name=name, version=1, protected=name != "pub/base")
    finally:
        store.close()
    pw = root / "htpasswd"
    pw.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n"
                          for u, p in PASSWORDS.items()))
    (root / "access.yaml").write_text(ACCESS_YAML)
    users = Htpasswd(pw)
    app = RegistryApp(lambda: SQLiteStore(root / "store"), htpasswd=users,
                      access=load_access(root / "access.yaml", users.users()))
    yield Granted(app, images)
    app.close()


def _paths(name: str, image: Image) -> list[str]:
    return [f"/v2/{name}/tags/list", f"/v2/{name}/manifests/v1", f"/v2/{name}/manifests/{image.digest}",
            *(f"/v2/{name}/blobs/{d}" for d in image.all_blobs())]


@pytest.mark.parametrize("name", list(EXPECT))
@pytest.mark.parametrize("who", list(WHO))
def test_access_rules_decide_who_gets_content(granted: Granted, name: str, who: str) -> None:
    """Every endpoint of a name, GET and HEAD, answers the same way for one user."""
    image, want = granted.images[name], EXPECT[name][who]
    for path in _paths(name, image):
        for method in ("GET", "HEAD"):
            status, headers, body = granted.get(path, who, method)
            assert status == want, (path, method, status)
            if want == 401:
                assert headers["WWW-Authenticate"] == 'Basic realm="reconciler"'
            if want != 200:
                assert image.manifest.raw not in body
    if want == 200:
        assert granted.get(f"/v2/{name}/manifests/v1", who)[2] == image.manifest.raw
        for d, data in image.all_blobs().items():
            assert granted.get(f"/v2/{name}/blobs/{d}", who)[2] == data


@pytest.mark.parametrize(("who", "name"), [("bob", "prod/app"), ("carol", "prod/app"), ("alice", "team-b/app")])
def test_a_name_not_granted_looks_exactly_like_a_missing_one(granted: Granted, who: str, name: str) -> None:
    """Same status, headers and body (but for the name itself) as a name that does not
    exist, on every endpoint: the user cannot tell that the repository is there."""
    missing = name[:-1] + "x"  # same length, so that Content-Length compares too
    for path in _paths(name, granted.images[name]):
        for method in ("GET", "HEAD"):
            hidden = granted.get(path, who, method)
            absent = granted.get(path.replace(name, missing, 1), who, method)
            assert hidden[0] == absent[0] == 404, (path, method)
            assert hidden[1] == absent[1]
            assert hidden[2].replace(name.encode(), missing.encode()) == absent[2]
            assert method == "HEAD" or json.loads(hidden[2])["errors"][0]["code"] == "NAME_UNKNOWN"


@pytest.mark.parametrize(("who", "names"), [
    ("anonymous", ["pub/base"]),
    ("alice", ["prod/app", "pub/base"]),
    ("bob", ["pub/base", "team-b/app"]),
    ("carol", ["pub/base"]),
])
def test_catalog_lists_only_what_the_user_may_pull(granted: Granted, who: str, names: list[str]) -> None:
    status, _, body = granted.get("/v2/_catalog", who)
    assert status == 200 and json.loads(body)["repositories"] == names


def test_a_shared_blob_is_served_only_through_a_granted_name(granted: Granted) -> None:
    """The base layer is in prod/app and team-b/app: bob reads it through team-b/app
    (his), never through prod/app; alice the other way round."""
    shared = sorted(set(granted.images["prod/app"].all_blobs()) & set(granted.images["team-b/app"].all_blobs()))
    assert len(shared) == 1
    data = granted.images["team-b/app"].all_blobs()[shared[0]]
    assert granted.get(f"/v2/team-b/app/blobs/{shared[0]}", "bob")[:3:2] == (200, data)
    assert granted.get(f"/v2/prod/app/blobs/{shared[0]}", "bob")[0] == 404
    assert granted.get(f"/v2/prod/app/blobs/{shared[0]}", "alice")[:3:2] == (200, data)
    assert granted.get(f"/v2/team-b/app/blobs/{shared[0]}", "alice")[0] == 404
    assert granted.get(f"/v2/pub/base/blobs/{shared[0]}", "bob")[0] == 404  # not in the public version
