"""Per-repository access (``reconciler serve --htpasswd FILE --access FILE``) through a
real gunicorn server, with skopeo as the client: credentials valid for another
repository pull nothing, the granted user pulls the image whole, a shared layer is
reachable only through a granted name, and the catalog lists only granted names."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests

from reconciler.store.sqlite import SQLiteStore
from tests.support.imagegen import Image, build_image
from tests.support.serving import Server, commit_tags, require_binary, run_server

pytestmark = pytest.mark.integration

PASSWORDS = {"alice": "alice-pw", "bob": "bob-pw"}
ACCESS = "repositories:\n  prod/*: [alice]\n  team-b/*: [bob]\n"
SHARED = (b"base layer both teams build on",)
IMAGES = {"prod/app": build_image("acc-prod", shared=SHARED), "team-b/app": build_image("acc-team-b", shared=SHARED),
          "pub/base": build_image("acc-pub")}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    require_binary("skopeo", "skopeo")
    root = tmp_path_factory.mktemp("access-srv")
    store = SQLiteStore(root / "store")
    try:
        for name, image in IMAGES.items():
            repo_id = name.replace("/", "-")
            commit_tags(store, repo_id, {"v1": image})
            store.publish(repo_id, name=name, version=1, protected=name != "pub/base")
    finally:
        store.close()
    pw = root / "htpasswd"
    pw.write_text("".join(f"{u}:{bcrypt.hashpw(p.encode(), bcrypt.gensalt(4)).decode()}\n"
                          for u, p in PASSWORDS.items()))
    (root / "access.yaml").write_text(ACCESS)
    with run_server(root / "store", root / "server.log", htpasswd=pw, workers=1,
                    serve_args=["--access", str(root / "access.yaml")]) as srv:
        yield srv


def skopeo_copy(srv: Server, name: str, dest: Path, user: str | None) -> subprocess.CompletedProcess[str]:
    creds = ["--src-creds", f"{user}:{PASSWORDS[user]}"] if user else []
    return subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--preserve-digests", *creds,
                           f"docker://{srv.host}/{name}:v1", f"dir:{dest}"], capture_output=True, text=True,
                          timeout=120)


def _copied(dest: Path, image: Image) -> None:
    assert (dest / "manifest.json").read_bytes() == image.manifest.raw
    for digest, data in image.all_blobs().items():
        assert (dest / digest.split(":", 1)[1]).read_bytes() == data


@pytest.mark.parametrize(("user", "name", "allowed"), [
    ("bob", "prod/app", False),
    ("alice", "prod/app", True),
    ("bob", "team-b/app", True),
    ("alice", "team-b/app", False),
    (None, "prod/app", False),
    (None, "pub/base", True),
    ("bob", "pub/base", True),
], ids=["bob-prod", "alice-prod", "bob-team-b", "alice-team-b", "anonymous-prod", "anonymous-public", "bob-public"])
def test_skopeo_copy_follows_the_access_rules(server: Server, tmp_path: Path, user: str | None, name: str,
                                              allowed: bool) -> None:
    dest = tmp_path / "out"
    proc = skopeo_copy(server, name, dest, user)
    if allowed:
        assert proc.returncode == 0, proc.stderr
        _copied(dest, IMAGES[name])
    else:
        assert proc.returncode != 0
        assert not (dest / "manifest.json").exists()
        # a valid user without the right hears what a missing name gets; no credentials: a challenge
        assert ("unknown" in proc.stderr.lower()) if user else ("unauthorized" in proc.stderr.lower())


def _get(srv: Server, path: str, user: str | None) -> requests.Response:
    auth = (user, PASSWORDS[user]) if user else None
    with requests.get(srv.url + path, auth=auth, timeout=30) as resp:
        return resp


def test_shared_blob_only_through_a_granted_name(server: Server) -> None:
    shared = sorted(set(IMAGES["prod/app"].all_blobs()) & set(IMAGES["team-b/app"].all_blobs()))
    assert len(shared) == 1
    assert _get(server, f"/v2/team-b/app/blobs/{shared[0]}", "bob").status_code == 200
    hidden = _get(server, f"/v2/prod/app/blobs/{shared[0]}", "bob")
    assert hidden.status_code == 404 and hidden.json()["errors"][0]["code"] == "NAME_UNKNOWN"
    assert _get(server, f"/v2/prod/app/blobs/{shared[0]}", "alice").status_code == 200


@pytest.mark.parametrize(("user", "names"), [
    (None, ["pub/base"]), ("alice", ["prod/app", "pub/base"]), ("bob", ["pub/base", "team-b/app"]),
], ids=["anonymous", "alice", "bob"])
def test_catalog_lists_only_granted_names(server: Server, user: str | None, names: list[str]) -> None:
    resp = _get(server, "/v2/_catalog", user)
    assert resp.status_code == 200 and json.loads(resp.content)["repositories"] == names


def test_access_log_names_the_refused_user(server: Server) -> None:
    _get(server, "/v2/prod/app/tags/list", "bob")
    assert any("bob" in line and "/v2/prod/app/tags/list" in line and " 404 " in line
               for line in server.log().splitlines())
