"""skopeo (an independent client) pulls from a real ``reconciler serve`` (gunicorn) on
loopback: every content kind, by tag and digest, ``--all`` for indexes, a protected
repository with and without credentials; the copied digests equal the store's. Also the
atomicity of publishing under a pulling client, and a clean SIGTERM shutdown."""

from __future__ import annotations

import http.client
import json
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests

from reconciler.model import Digest, Manifest
from reconciler.model import mediatypes as mt
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.store.sqlite import SQLiteStore
from tests.support.imagegen import build_image, build_multiarch
from tests.support.narrow import narrow
from tests.support.serving import Fixture, Server, commit_tags, content_of, fill_store, require_binary, run_server, stop

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Fixture, SQLiteStore]]:
    require_binary("skopeo", "skopeo")
    root = tmp_path_factory.mktemp("skopeo-srv")
    store = SQLiteStore(root / "store")
    fx = fill_store(store)
    pw = root / "htpasswd"
    pw.write_text("alice:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode() + "\n")
    with run_server(root / "store", root / "server.log", htpasswd=pw) as srv:
        yield srv, fx, store
    store.close()


def skopeo(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    if check and proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc


def layout_digests(layout: Path, ref: str) -> str:
    index = json.loads((layout / "index.json").read_text())
    for d in index["manifests"]:
        if d.get("annotations", {}).get("org.opencontainers.image.ref.name") == ref:
            return str(d["digest"])
    raise AssertionError(f"{ref} not in {index}")


@pytest.mark.parametrize("name", ["test/docker", "test/oci", "test/list", "test/index"])
def test_inspect_raw_returns_the_stored_bytes(server: tuple[Server, Fixture, SQLiteStore], name: str) -> None:
    srv, fx, _ = server
    m = fx.images[name]["v1"].manifest
    out = skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{srv.host}/{name}:v1")
    assert out.stdout.encode() == m.raw
    info = json.loads(skopeo("inspect", "--tls-verify=false", f"docker://{srv.host}/{name}:v1").stdout)
    assert info["Architecture"] == "amd64" and "v1" in info["RepoTags"]


@pytest.mark.parametrize("name,all_", [
    ("test/docker", False), ("test/oci", False), ("test/index", True),
], ids=["docker-schema2", "oci-manifest", "oci-index-all"])
def test_copy_by_tag_keeps_digests(server: tuple[Server, Fixture, SQLiteStore], tmp_path: Path, name: str, all_: bool) -> None:
    srv, fx, _ = server
    img = fx.images[name]["v1"]
    layout = tmp_path / "layout"
    flags = ["--all"] if all_ else []
    # --preserve-digests: fail instead of converting media types for the oci: layout
    skopeo("copy", "--src-tls-verify=false", "--preserve-digests", *flags,
           f"docker://{srv.host}/{name}:v1", f"oci:{layout}:v1")
    assert layout_digests(layout, "v1") == str(img.digest)
    for digest in (*img.all_blobs(), *(str(m.digest) for m in img.all_manifests())):
        algo, hexpart = digest.split(":")
        assert (layout / "blobs" / algo / hexpart).is_file(), f"{digest} not copied"


def test_copy_docker_list_all(server: tuple[Server, Fixture, SQLiteStore], tmp_path: Path) -> None:
    """An OCI layout cannot hold a Docker manifest list unchanged (skopeo converts it and
    its children to OCI), so the exact digests are checked with a dir: copy, and the
    oci: copy must still carry every layer blob byte for byte."""
    srv, fx, _ = server
    img = fx.images["test/list"]["v1"]
    ref = f"docker://{srv.host}/test/list:v1"
    skopeo("copy", "--src-tls-verify=false", "--all", ref, f"dir:{tmp_path / 'dir'}")
    assert (tmp_path / "dir" / "manifest.json").read_bytes() == img.manifest.raw
    for child in img.children:
        assert (tmp_path / "dir" / f"{child.digest.hex}.manifest.json").read_bytes() == child.manifest.raw
    skopeo("copy", "--src-tls-verify=false", "--all", ref, f"oci:{tmp_path / 'layout'}:v1")
    layers = {d.digest.hex for child in img.children for d in narrow(Manifest, child.manifest).layers}
    assert layers and all((tmp_path / "layout" / "blobs" / "sha256" / h).is_file() for h in layers)


def test_copy_by_digest(server: tuple[Server, Fixture, SQLiteStore], tmp_path: Path) -> None:
    srv, fx, _ = server
    img = fx.images["test/index"]["v1"]
    child = img.children[1]  # arm64 child, pulled directly by digest
    layout = tmp_path / "layout"
    skopeo("copy", "--src-tls-verify=false", "--preserve-digests",
           f"docker://{srv.host}/test/index@{child.digest}", f"oci:{layout}:arm")
    assert layout_digests(layout, "arm") == str(child.digest)


def test_protected_repository_needs_credentials(server: tuple[Server, Fixture, SQLiteStore], tmp_path: Path) -> None:
    srv, fx, _ = server
    img = fx.images["test/secret"]["v1"]
    ref = f"docker://{srv.host}/test/secret:v1"
    anonymous = skopeo("inspect", "--tls-verify=false", "--raw", ref, check=False)
    assert anonymous.returncode != 0 and "unauthorized" in anonymous.stderr.lower()
    wrong = skopeo("inspect", "--tls-verify=false", "--creds", "alice:nope", "--raw", ref, check=False)
    assert wrong.returncode != 0
    layout = tmp_path / "layout"
    skopeo("copy", "--src-tls-verify=false", "--src-creds", "alice:s3cret", "--preserve-digests", ref,
           f"oci:{layout}:v1")
    assert layout_digests(layout, "v1") == str(img.digest)
    # anonymous pulls of public names still work on a server with a user list
    skopeo("inspect", "--tls-verify=false", "--raw", f"docker://{srv.host}/test/docker:v1")


def test_list_tags(server: tuple[Server, Fixture, SQLiteStore]) -> None:
    srv, _, _ = server
    out = json.loads(skopeo("list-tags", "--tls-verify=false", f"docker://{srv.host}/test/docker").stdout)
    assert out["Tags"] == ["latest", "v1"]


def test_access_log_written(server: tuple[Server, Fixture, SQLiteStore]) -> None:
    srv, _, _ = server
    requests.get(srv.url + "/v2/test/docker/tags/list", headers={"User-Agent": "access-log-probe"}, timeout=10).close()
    assert '"GET /v2/test/docker/tags/list HTTP/1.1" 200 ' in srv.log()
    assert "access-log-probe" in srv.log()


def test_pulls_during_publishes_see_old_or_new_never_a_mix(tmp_path: Path) -> None:
    """A client pulls tag v1 (manifest, children, blobs) in a bounded loop while newer
    versions are published under it. Every manifest it gets is exactly one of the
    published images, and a child or blob of it is missing only when a newer version has
    been published meanwhile (the client then re-reads the tag and sees the newer one)."""
    store = SQLiteStore(tmp_path / "store")
    images = [build_multiarch(f"atom-{i}") for i in range(6)]
    versions = [commit_tags(store, "atom", {"v1": img}) for img in images]
    store.publish("atom", name="atom", version=versions[0], protected=False)
    order = {str(img.digest): i for i, img in enumerate(images)}
    done = threading.Event()

    def publisher() -> None:
        for v in versions[1:]:
            if done.wait(0.05):
                return
            store.publish("atom", name="atom", version=v, protected=False)

    with run_server(tmp_path / "store", tmp_path / "server.log") as srv, requests.Session() as http:
        def tag_position() -> int:
            r = http.get(f"{srv.url}/v2/atom/manifests/v1", headers={"Accept": mt.ACCEPT_ALL}, timeout=10)
            assert r.status_code == 200
            digest = r.headers["Docker-Content-Digest"]
            assert digest in order, f"unexpected manifest {digest}"
            assert r.content == images[order[digest]].manifest.raw
            return order[digest]

        seen: list[int] = []
        thread = threading.Thread(target=publisher)
        thread.start()
        try:
            for _ in range(200):
                pos = tag_position()
                seen.append(pos)
                img = images[pos]
                paths = [f"manifests/{c.digest}" for c in img.children] + [f"blobs/{b}" for b in img.all_blobs()]
                for path in paths:
                    r = http.head(f"{srv.url}/v2/atom/{path}", headers={"Accept": mt.ACCEPT_ALL}, timeout=10)
                    if r.status_code != 200:
                        assert r.status_code == 404 and tag_position() > pos, f"{path} of a served image missing"
                        break
                if pos == len(images) - 1:
                    break
        finally:
            done.set()
            thread.join(timeout=30)
    store.close()
    assert seen == sorted(seen), "versions went backwards"
    assert len(set(seen)) > 1, "the loop must have raced real publishes"


def test_sigterm_shuts_down_cleanly(tmp_path: Path) -> None:
    SQLiteStore(tmp_path / "store").close()
    with run_server(tmp_path / "store", tmp_path / "server.log", workers=1) as srv:
        assert requests.get(srv.url + "/v2/", timeout=10).status_code == 200
        assert stop(srv.proc) == 0
    assert "Shutting down" in srv.log() or "Handling signal: term" in srv.log()


def test_sigterm_lets_an_inflight_blob_download_finish(tmp_path: Path) -> None:
    """A client in the middle of a large blob when the server is told to stop gets the
    whole blob (gunicorn's graceful timeout covers it), and the server then exits 0."""
    store = SQLiteStore(tmp_path / "store")
    img = build_image("sigterm")
    big = bytes(range(256)) * (128 * 1024)  # 32 MiB, far more than the socket buffers hold
    digest = Digest.of(big)
    store.blob_put([big], digest)
    content = content_of(img)
    commit_tags(store, "big", {"v1": img})
    info = store.version_commit("big", base=1, content=ContentSet(content.blobs | {digest}, content.manifests,
                                                                  content.indexes),
                                tags={"v1": TagEntry(img.digest, Origin.MANUAL)}, operation="test")
    assert info is not None
    store.publish("big", name="big", version=info.number, protected=False)
    store.close()
    with run_server(tmp_path / "store", tmp_path / "server.log", workers=1) as srv:
        with requests.get(f"{srv.url}/v2/big/blobs/{digest}", stream=True, timeout=30) as resp:
            assert resp.status_code == 200
            received = bytearray(resp.raw.read(64 * 1024))
            srv.proc.send_signal(signal.SIGTERM)
            for chunk in resp.iter_content(64 * 1024):
                received += chunk
                time.sleep(0.002)  # a slow reader: the transfer is still going when SIGTERM lands
        assert bytes(received) == big
        assert srv.proc.wait(timeout=30) == 0


def _raw_request(host: str, method: str, path: str, headers: list[tuple[str, str]]) -> http.client.HTTPResponse:
    conn = http.client.HTTPConnection(host, timeout=30)
    conn.putrequest(method, path)
    for name, value in headers:  # putheader twice sends the header twice
        conn.putheader(name, value)
    conn.endheaders()
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp


def test_several_accept_headers_count_as_one_list(server: tuple[Server, Fixture, SQLiteStore]) -> None:
    """Docker sends one Accept header per media type; all of them count."""
    srv, fx, _ = server
    index = fx.images["test/list"]["v1"].manifest
    resp = _raw_request(srv.host, "GET", "/v2/test/list/manifests/v1",
                        [("Accept", mt.DOCKER_SCHEMA2), ("Accept", mt.DOCKER_MANIFEST_LIST)])
    assert resp.status == 200 and resp.getheader("Docker-Content-Digest") == str(index.digest)


@pytest.mark.parametrize("path", ["manifests/v1", "blobs/"], ids=["manifest", "blob"])
def test_head_through_gunicorn_keeps_content_length(server: tuple[Server, Fixture, SQLiteStore], path: str) -> None:
    srv, fx, _ = server
    img = fx.images["test/docker"]["v1"]
    blob_digest, blob = next(iter(img.blobs.items()))
    full = f"/v2/test/docker/{path}{blob_digest if path == 'blobs/' else ''}"
    size = len(blob) if path == "blobs/" else len(img.manifest.raw)
    resp = _raw_request(srv.host, "HEAD", full, [("Accept", mt.ACCEPT_ALL)])
    assert resp.status == 200 and resp.getheader("Content-Length") == str(size)


@pytest.mark.parametrize("path", ["manifests/v1", "blobs/"], ids=["manifest", "blob"])
def test_head_keeps_the_connection_alive_and_sends_no_body(server: tuple[Server, Fixture, SQLiteStore], path: str) -> None:
    """HEADs then a GET on one keep-alive connection, as load generators and pulling
    clients do: every answer comes back on the same socket (a HEAD that closed the
    connection would cost a reconnect per request), the HEADs carry the GET's headers,
    and the GET's bytes are exact (a HEAD that wrote body bytes would corrupt them)."""
    srv, fx, _ = server
    img = fx.images["test/docker"]["v1"]
    blob_digest, blob = next(iter(img.blobs.items()))
    full = f"/v2/test/docker/{path}{blob_digest if path == 'blobs/' else ''}"
    expected = blob if path == "blobs/" else img.manifest.raw
    host, _, port = srv.host.rpartition(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        answers = []
        for method in ("HEAD", "HEAD", "GET"):
            conn.request(method, full, headers={"Accept": mt.ACCEPT_ALL})
            resp = conn.getresponse()
            answers.append((resp.status, resp.getheader("Connection"), dict(resp.getheaders()), resp.read()))
            if method == "HEAD":
                sock = conn.sock
            assert conn.sock is not None and conn.sock is sock, f"the server closed the connection after {method}"
    finally:
        conn.close()
    (s1, c1, h1, b1), (s2, c2, h2, b2), (s3, c3, h3, b3) = answers
    assert (s1, s2, s3) == (200, 200, 200) and {c1, c2, c3} == {"keep-alive"}
    assert b1 == b2 == b"" and b3 == expected
    same = ("Content-Length", "Content-Type", "Docker-Content-Digest")
    assert [h1.get(k) for k in same] == [h2.get(k) for k in same] == [h3.get(k) for k in same]
    assert h1["Content-Length"] == str(len(expected))
