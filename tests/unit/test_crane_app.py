"""Crane mode's WSGI application in-process: serve-content mode sends the files (with
the digest header and exact media type Crane lacked), HEAD, missing files, Basic
credentials for protected repositories, and a bug that must not kill the worker."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path

import bcrypt
import pytest

from reconciler.model import mediatypes as mt
from reconciler.server.access import AccessRules, load_access
from reconciler.server.auth import Htpasswd
from reconciler.server.crane import CraneApp, CraneConfig
from tests.support.cli import RunCli
from tests.support.imagegen import build_image, build_schema1
from tests.support.serving import wsgi_call

OCI = build_image("crane-app-oci", oci=True)
S1 = build_schema1("crane-app-s1")
BLOB_DIGEST, BLOB = next(iter(OCI.all_blobs().items()))


@pytest.fixture
def served(tmp_path: Path) -> tuple[Path, Path]:
    data, v2 = tmp_path / "app", tmp_path / "v2"
    data.mkdir()
    tree = v2 / "synctest"
    for sub in ("blobs", "manifests/1", "manifests/2", "tags"):
        (tree / sub).mkdir(parents=True)
    (tree / "manifests/2" / str(OCI.digest)).write_bytes(OCI.manifest.raw)
    (tree / "manifests/2/oci").symlink_to(str(OCI.digest))
    (tree / "manifests/1/old").write_bytes(S1.manifest.raw)
    (tree / "blobs" / BLOB_DIGEST).write_bytes(BLOB)
    (tree / "tags/list").write_text('{"name": "pulpdemo/synctest", "tags": ["oci", "old"]}')
    app = {"type": "pulp-docker-redirect", "version": 4, "repository": "synctest",
           "repo-registry-id": "pulpdemo/synctest", "url": "https://cdn.example.com/synctest/", "protected": False,
           "schema2_data": [str(OCI.digest), "oci"], "manifest_list_data": [], "manifest_list_amd64_tags": {}}
    (data / "synctest.json").write_text(json.dumps(app))
    (data / "secret.json").write_text(json.dumps({**app, "repo-registry-id": "ns/secret", "protected": True}))
    return data, v2


def make_app(served: tuple[Path, Path], *, htpasswd: Htpasswd | None = None,
             access: AccessRules | None = None) -> CraneApp:
    data, v2 = served
    config = CraneConfig(data_dir=str(data), serve_content=True, content_dir_v2=str(v2), content_dir_v1=str(v2))
    return CraneApp(config, htpasswd=htpasswd, access=access)


def test_manifest_served_with_digest_and_its_own_media_type(served: tuple[Path, Path]) -> None:
    status, headers, body = wsgi_call(make_app(served), "GET", "/v2/pulpdemo/synctest/manifests/oci",
                                      headers={"Accept": mt.DOCKER_SCHEMA2})
    assert (status, body) == (200, OCI.manifest.raw)
    assert headers["Docker-Content-Digest"] == str(OCI.digest)
    assert headers["Content-Type"] == mt.OCI_MANIFEST           # Crane would have said Docker schema2
    assert headers["Docker-Distribution-API-Version"] == "registry/2.0"
    assert headers["Content-Length"] == str(len(OCI.manifest.raw))


def test_schema1_is_served_as_prettyjws(served: tuple[Path, Path]) -> None:
    status, headers, body = wsgi_call(make_app(served), "GET", "/v2/pulpdemo/synctest/manifests/old")
    assert (status, body, headers["Content-Type"]) == (200, S1.manifest.raw, mt.DOCKER_SCHEMA1_SIGNED)
    assert headers["Docker-Content-Digest"] == "sha256:" + hashlib.sha256(S1.manifest.raw).hexdigest()


def test_blob_and_head(served: tuple[Path, Path]) -> None:
    app = make_app(served)
    status, headers, body = wsgi_call(app, "GET", f"/v2/pulpdemo/synctest/blobs/{BLOB_DIGEST}")
    assert (status, body, headers["Content-Type"]) == (200, BLOB, "application/octet-stream")
    assert headers["Docker-Content-Digest"] == BLOB_DIGEST
    status, headers, body = wsgi_call(app, "HEAD", f"/v2/pulpdemo/synctest/blobs/{BLOB_DIGEST}")
    assert (status, body, headers["Content-Length"]) == (200, b"", str(len(BLOB)))
    status, headers, body = wsgi_call(app, "HEAD", "/v2/pulpdemo/synctest/manifests/oci", headers={"Accept": "*/*"})
    # no schema2 in Accept -> Crane's step 5: manifests/1/oci, which does not exist
    assert (status, body) == (404, b"")


def test_tags_list_and_missing_files(served: tuple[Path, Path]) -> None:
    app = make_app(served)
    status, headers, body = wsgi_call(app, "GET", "/v2/pulpdemo/synctest/tags/list")
    assert (status, headers["Content-Type"], json.loads(body)["tags"]) == (200, "application/json", ["oci", "old"])
    status, headers, body = wsgi_call(app, "GET", f"/v2/pulpdemo/synctest/blobs/sha256:{'0' * 64}")
    assert (status, json.loads(body)) == (404, {"errors": [{"code": "404", "message": "Not Found"}]})
    status, _, _ = wsgi_call(app, "GET", "/v1/images/abc/json")
    assert status == 404


def test_protected_repository_needs_valid_basic_credentials(served: tuple[Path, Path], tmp_path: Path) -> None:
    users = tmp_path / "htpasswd"
    users.write_text(f"alice:{bcrypt.hashpw(b'secret', bcrypt.gensalt(4)).decode()}\n")
    app = make_app(served, htpasswd=Htpasswd(str(users)))

    def get(password: str | None) -> int:
        headers = {}
        if password is not None:
            headers["Authorization"] = "Basic " + base64.b64encode(f"alice:{password}".encode()).decode()
        return wsgi_call(app, "GET", "/v2/ns/secret/tags/list", headers=headers)[0]

    assert (get(None), get("wrong"), get("secret")) == (404, 404, 200)


def test_access_rules_decide_which_user_sees_a_protected_repository(served: tuple[Path, Path],
                                                                     tmp_path: Path) -> None:
    """``serve --crane-data-dir --access``: bob is a valid user without a right to
    ns/secret, so it is 404 for him on every v2 route and absent from his catalog."""
    users = tmp_path / "htpasswd"
    users.write_text("".join(f"{u}:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n" for u in ("alice", "bob")))
    (tmp_path / "access.yaml").write_text("repositories:\n  ns/*: [alice]\n  pulpdemo/*: [bob]\n")
    htpasswd = Htpasswd(str(users))
    app = make_app(served, htpasswd=htpasswd, access=load_access(tmp_path / "access.yaml", htpasswd.users()))

    def get(user: str, path: str) -> tuple[int, bytes]:
        auth = "Basic " + base64.b64encode(f"{user}:pw".encode()).decode()
        status, _, body = wsgi_call(app, "GET", path, headers={"Authorization": auth, "Accept": mt.ACCEPT_ALL})
        return status, body

    paths = ["/v2/ns/secret/tags/list", "/v2/ns/secret/manifests/oci", f"/v2/ns/secret/blobs/{BLOB_DIGEST}"]
    assert [get("bob", p)[0] for p in paths] == [404, 404, 404]
    assert [get("alice", p)[0] for p in paths] == [200, 200, 200]
    assert get("bob", "/v2/ns/secret/tags/list") == get("bob", "/v2/ns/nosuch/tags/list")
    assert json.loads(get("bob", "/v2/_catalog")[1])["repositories"] == ["pulpdemo/synctest"]
    assert json.loads(get("alice", "/v2/_catalog")[1])["repositories"] == ["ns/secret", "pulpdemo/synctest"]


def test_a_bug_is_a_logged_500(served: tuple[Path, Path], caplog: pytest.LogCaptureFixture,
                               monkeypatch: pytest.MonkeyPatch) -> None:
    app = make_app(served)

    def broken() -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(app.watcher, "current", broken)
    with caplog.at_level(logging.ERROR, "reconciler.server.crane"):
        status, _, _ = wsgi_call(app, "GET", "/v2/pulpdemo/synctest/tags/list")
    assert status == 500 and "boom" in caplog.text


def test_cli_errors_before_starting(run_cli: RunCli, tmp_path: Path) -> None:
    missing = run_cli("serve", "--crane-data-dir", str(tmp_path / "nope"))
    assert missing.returncode == 1 and "crane data directory" in missing.stderr and "nope" in missing.stderr
    conf = tmp_path / "crane.conf"
    conf.write_text("[general]\ndata_dir_polling_interval: often\n")
    bad = run_cli("serve", "--crane-config", str(conf))
    assert bad.returncode == 1 and f"{conf}: [general] data_dir_polling_interval" in bad.stderr
    usage = run_cli("serve", "--crane-poll-interval", "5")
    assert usage.returncode == 2 and "--crane-poll-interval needs --crane-data-dir" in usage.stderr


@pytest.mark.parametrize("target", [
    "../../../../../../../../etc/passwd",     # anything on the machine
    "../../../secret/manifests/2/{digest}",    # a protected repository's manifest, through a public name
], ids=["etc-passwd", "protected-manifest"])
def test_an_app_file_cannot_make_the_server_read_outside_its_repository(
        served: tuple[Path, Path], target: str, caplog: pytest.LogCaptureFixture) -> None:
    data, v2 = served
    secret_tree = v2 / "secret" / "manifests" / "2"
    secret_tree.mkdir(parents=True)
    (secret_tree / str(S1.digest)).write_bytes(b"PROTECTED-MANIFEST")
    evil = {"type": "pulp-docker-redirect", "version": 4, "repository": "synctest", "repo-registry-id": "pub/app",
            "url": "https://cdn.example.com/synctest/", "protected": False, "schema2_data": [],
            "manifest_list_data": ["multi"], "manifest_list_amd64_tags": {"passwd": [target.format(digest=S1.digest), 2]}}
    (data / "evil.json").write_text(json.dumps(evil))
    with caplog.at_level(logging.ERROR, "reconciler.server.crane"):
        app = make_app(served)
    for accept in (mt.DOCKER_SCHEMA2, "application/json"):
        status, _, body = wsgi_call(app, "GET", "/v2/pub/app/manifests/passwd", headers={"Accept": accept})
        assert status == 404 and b"root:" not in body and b"PROTECTED" not in body
    assert any("evil.json" in r.getMessage() and "manifest_list_amd64_tags" in r.getMessage() for r in caplog.records)
    # the other files still load
    assert wsgi_call(app, "GET", "/v2/pulpdemo/synctest/manifests/oci", headers={"Accept": mt.DOCKER_SCHEMA2})[0] == 200


def test_content_paths_never_leave_the_repository_directory() -> None:
    """The backstop behind the app-file checks: whatever ``sub`` holds, the normalised
    path stays under ``<content_dir>/<repository>/``."""
    from reconciler.server.crane.appfile import AppFile
    from reconciler.server.crane.values import content_file

    app = AppFile(path="x.json", version=4, registry_id="a", url="/x/", repository="repo")
    assert content_file("/srv/v2", app, "manifests/2/latest") == "/srv/v2/repo/manifests/2/latest"
    for sub in ("../other/manifests/2/x", "manifests/../../other/x", "/etc/passwd", "..", ""):
        assert content_file("/srv/v2", app, sub) is None, sub
