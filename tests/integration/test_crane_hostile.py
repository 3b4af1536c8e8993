"""Crane mode (``reconciler serve --crane-data-dir``, a real gunicorn process) against
hostile requests and a hostile app file, as raw bytes on the socket: newlines after a
valid reference (a 500 with a traceback from a newline in ``Location`` before), a
``SCRIPT_NAME`` header that rewrote the path past a proxy exposing only ``/v2/``, the
admin listing of protected repositories, and an app file whose "digest" is
``../../../etc/passwd`` in serve-content mode."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import pytest

from tests.support.serving import Server, raw_http, run_serve_command

pytestmark = pytest.mark.integration

SECRET = b"TOP-SECRET-crane-5e2a"
D = "sha256:" + "d" * 64
IMAGE = "e" * 64


@dataclass
class World:
    redirect: Server
    content: Server
    root: Path


def app_file(name: str, *, protected: bool = False, version: int = 4, **extra: object) -> str:
    doc = {"type": "pulp-docker-redirect", "version": version, "repository": name.replace("/", "-"),
           "repo-registry-id": name, "url": f"https://static.example.com/{name}/", "protected": protected}
    if version == 4:
        doc.update(schema2_data=[D, "latest"], manifest_list_data=[], manifest_list_amd64_tags={})
    return json.dumps({**doc, **extra})


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    root = tmp_path_factory.mktemp("crane-hostile")
    data, web = root / "app", root / "web"
    data.mkdir()
    (web / "pub-app" / "manifests" / "2").mkdir(parents=True)
    (web / "pub-app" / "manifests" / "2" / "latest").write_text('{"schemaVersion": 2}')
    (web / "pub-evil" / "manifests" / "2").mkdir(parents=True)  # the evil repository's own tree exists
    (root / "secret.txt").write_bytes(SECRET)
    (data / "pub.json").write_text(app_file("pub/app"))
    (data / "secret.json").write_text(app_file("team/secret", protected=True))
    (data / "old.json").write_text(app_file("team/old", protected=True, version=1, images=[{"id": IMAGE}],
                                            tags={"latest": IMAGE}))
    # the trick from the issue: a "digest" that walks out of the content tree
    (data / "evil.json").write_text(app_file("pub/evil", manifest_list_amd64_tags={
        "passwd": ["../../../../secret.txt", 2]}, manifest_list_data=["passwd"]))
    users = root / "htpasswd"
    users.write_text("alice:" + bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode() + "\n")
    conf = root / "crane.conf"
    conf.write_text(f"[general]\ndata_dir: {data}\n[serve_content]\nenable: true\n"
                    f"content_dir_v1: {web}\ncontent_dir_v2: {web}\n")
    with run_serve_command(["serve", "--crane-data-dir", str(data), "--htpasswd", str(users)], root / "redirect.log",
                           workers=1) as redirect, \
         run_serve_command(["serve", "--crane-config", str(conf)], root / "content.log", workers=1) as content:
        yield World(redirect, content, root)


def raw(server: Server, request_line: str, headers: dict[str, str] | None = None) -> tuple[int, bytes, bytes]:
    return raw_http(server.host, request_line, headers)


@pytest.mark.parametrize("path", [
    "/v2/pub/app/manifests/latest%0a", "/v2/pub/app/manifests/latest%0d%0aSet-Cookie:%20a=b",
    "/v2/pub/app/blobs/" + D + "%0a", "/v2/pub/app/tags/list%0a", f"/v1/images/{IMAGE}%0a/json",
])
def test_a_newline_after_a_valid_reference_is_a_404(world: World, path: str) -> None:
    status, head, _ = raw(world.redirect, f"GET {path} HTTP/1.1")
    assert status == 404, head
    assert b"Set-Cookie" not in head


def test_script_name_cannot_reach_the_admin_listing(world: World) -> None:
    """Behind a proxy that forwards only /v2/, ``SCRIPT_NAME: /v2/x`` made
    ``/v2/x/crane/repositories`` the admin listing; a mismatched one was a 500."""
    for server in (world.redirect, world.content):
        status, _, body = raw(server, "GET /v2/x/crane/repositories/v2 HTTP/1.1",
                              {"SCRIPT_NAME": "/v2/x", "Accept": "application/json"})
        assert status == 404 and b"protected" not in body
        status, _, _ = raw(server, "GET /v2/ HTTP/1.1", {"SCRIPT_NAME": "/elsewhere"})
        assert status == 200


def test_the_admin_listing_shows_protected_repositories_only_to_who_may_read_them(world: World) -> None:
    alice = "Basic " + base64.b64encode(b"alice:secret").decode()
    for path, name in (("/crane/repositories/v2", "team/secret"), ("/crane/repositories/v1", "team/old")):
        status, _, body = raw(world.redirect, f"GET {path} HTTP/1.1", {"Accept": "application/json"})
        assert status == 200 and name not in json.loads(body) and IMAGE.encode() not in body
        status, _, body = raw(world.redirect, f"GET {path} HTTP/1.1", {"Accept": "application/json",
                                                                      "Authorization": alice})
        assert status == 200 and name in json.loads(body)


def test_an_app_file_cannot_serve_files_outside_the_content_tree(world: World) -> None:
    for accept in ("application/vnd.docker.distribution.manifest.v2+json", "*/*"):
        status, _, body = raw(world.content, "GET /v2/pub/evil/manifests/passwd HTTP/1.1", {"Accept": accept})
        assert status == 404 and SECRET not in body
    assert "evil.json" in world.content.log()  # skipped, with a line saying why
    status, _, body = raw(world.content, "GET /v2/pub/app/manifests/latest HTTP/1.1",
                          {"Accept": "application/vnd.docker.distribution.manifest.v2+json"})
    assert status == 200 and body == b'{"schemaVersion": 2}'


def test_no_request_was_a_500_or_left_a_traceback(world: World) -> None:
    """Runs after the others in this module (file order)."""
    for server in (world.redirect, world.content):
        log = server.log()
        assert "Traceback" not in log and '" 500 ' not in log and server.proc.poll() is None
