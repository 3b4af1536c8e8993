"""The scale-out setup end to end: ``reconciler apply`` of examples/demo.yaml into a store
whose blobs live in S3 (moto's standalone server as the S3 test double), then two
``reconciler serve --blob-redirect`` replicas over that one store. A client alternates
between them (manifest from one, blobs from the other, through the presigned redirects),
and skopeo copies through each replica; every digest equals the store's.

The store location is a fixture parameter: the embedded SQLite store, and the
PostgreSQL store (``postgresql://...`` on the session's test server, issue 10's "done
when": PostgreSQL + S3, two replicas, skopeo gets the store's digests), whose manifests
live in S3 too, so the replicas share nothing but the database and the bucket.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import bcrypt
import pytest
import requests

from reconciler import api
from reconciler.model import Digest
from reconciler.model import mediatypes as mt
from reconciler.store.protocol import Store
from tests.support.narrow import narrow
from tests.support.postgres import PostgresServer
from tests.support.s3server import S3Server
from tests.support.serving import REPO_ROOT, Server, require_binary, run_server

pytestmark = pytest.mark.integration

DEMO = REPO_ROOT / "examples" / "demo.yaml"
ACCEPT = ", ".join([mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_SCHEMA2])
PUBLIC = {"pulpdemo/schema2": "latest", "pulpdemo/hello": "1.0"}


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def store_location(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Where the replicas' shared metadata store lives (one location string per backend)."""
    if request.param == "sqlite":
        yield str(tmp_path_factory.mktemp("scaleout") / "store")
        return
    pg: PostgresServer = request.getfixturevalue("postgres_server")
    url = pg.checkout()
    yield url
    pg.checkin(url)


def _is_postgres(location: str) -> bool:
    return location.startswith("postgresql://")


@pytest.fixture(scope="module")
def applied(store_location: str, s3_server: S3Server) -> Iterator[tuple[str, str, Store]]:
    """The demo applied with blobs in S3: (store location, blobs URL, the store opened here)."""
    blobs = s3_server.bucket_url("scaleout")
    cmd = [sys.executable, "-m", "reconciler", "--store", store_location, "--blobs", blobs, "apply", "-f", str(DEMO)]
    env = {**os.environ, **s3_server.env, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with pytest.MonkeyPatch.context() as mp:
        for key, value in s3_server.env.items():
            mp.setenv(key, value)
        # a directory store remembers where its blobs are; a PostgreSQL store is always told
        store = api.open_store(store_location, blobs if _is_postgres(store_location) else None)
        try:
            yield store_location, blobs, store
        finally:
            store.close()


@pytest.fixture(scope="module")
def replicas(applied: tuple[str, str, Store], s3_server: S3Server,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Server]]:
    """Two ``reconciler serve --blob-redirect`` processes over the one store."""
    location, blobs, _ = applied
    env = {**s3_server.env, **({"RECONCILER_BLOBS": blobs} if _is_postgres(location) else {})}
    logs = tmp_path_factory.mktemp("replicas")
    pw = logs / "htpasswd"  # for the demo's protected prod/hello
    pw.write_text("alice:" + bcrypt.hashpw(b"s3cret", bcrypt.gensalt(4)).decode() + "\n")
    args = ["--blob-redirect", "--redirect-expires", "120", "--threads", "2"]
    with run_server(location, logs / "a.log", workers=1, serve_args=args, env=env, htpasswd=pw) as a, \
            run_server(location, logs / "b.log", workers=1, serve_args=args, env=env, htpasswd=pw) as b:
        yield a, b


def test_apply_puts_the_blobs_in_s3(applied: tuple[str, str, Store], s3_server: S3Server) -> None:
    location, blobs, store = applied
    keys = s3_server.keys(blobs)
    stored = {k.rsplit("/", 1)[1] for k in keys if "/blobs/" in k}
    contents = [store.version_get(repo.id).content for repo in store.repository_list()]
    held = {d.hex for c in contents for d in c.blobs}
    assert held and stored == held
    manifests = {k.rsplit("/", 1)[1] for k in keys if "/manifests/" in k}
    if _is_postgres(location):
        # the replicas share no folder: manifests and the store-id marker are objects too
        assert manifests == {d.hex for c in contents for d in c.manifests | c.indexes}
        assert any(k.endswith("/store-id") for k in keys)
    else:
        assert not manifests  # the embedded store keeps its manifests in its directory
        assert not any((Path(location) / "blobs").rglob("*"))  # nothing went to local files
    assert store.check().ok


def test_client_alternating_between_replicas_gets_the_stores_digests(
        applied: tuple[str, str, Store], replicas: tuple[Server, Server]) -> None:
    _, _, store = applied
    servers = list(replicas)
    turn = 0

    def get(path: str, headers: Mapping[str, str] | None = None) -> requests.Response:
        nonlocal turn
        server = servers[turn % 2]
        turn += 1
        resp = requests.get(server.url + path, timeout=30, headers=headers)
        assert resp.status_code == 200, f"{server.url}{path}: {resp.status_code} {resp.text[:300]}"
        return resp

    blobs_fetched = 0
    for name, tag in PUBLIC.items():
        pub = store.publication_get(name)
        assert pub is not None
        expected = store.version_tag(pub.repo_id, pub.version, tag)
        top = get(f"/v2/{name}/manifests/{tag}", headers={"Accept": ACCEPT})
        assert top.headers["Docker-Content-Digest"] == str(expected)
        assert Digest("sha256", hashlib.sha256(top.content).hexdigest()) == expected
        doc = json.loads(top.content)
        children = [m["digest"] for m in doc.get("manifests", ())] or [str(expected)]
        for child in children:
            m = json.loads(get(f"/v2/{name}/manifests/{child}", headers={"Accept": ACCEPT}).content)
            for desc in [m["config"], *m["layers"]]:
                resp = get(f"/v2/{name}/blobs/{desc['digest']}")
                # answered by a presigned redirect to the object storage, not by the replica
                assert [r.status_code for r in resp.history] == [307]
                assert "X-Amz-Signature=" in resp.url
                assert "sha256:" + hashlib.sha256(resp.content).hexdigest() == desc["digest"]
                blobs_fetched += 1
    assert blobs_fetched >= 4
    # both replicas answered manifests and redirected blob GETs (their access logs say so)
    for server in servers:
        log = server.log()
        assert re.search(r'"GET /v2/pulpdemo/\S+/manifests/\S+ HTTP/1.1" 200', log), log
        assert re.search(r'"GET /v2/pulpdemo/\S+/blobs/sha256:\w+ HTTP/1.1" 307', log), log


@pytest.mark.parametrize("replica,name,tag,all_", [
    (0, "pulpdemo/schema2", "latest", False), (1, "pulpdemo/hello", "1.0", True), (0, "prod/hello", "stable", True),
], ids=["schema2-via-replica-a", "oci-index-all-via-replica-b", "protected-with-credentials"])
def test_skopeo_copy_through_a_replica(applied: tuple[str, str, Store], replicas: tuple[Server, Server],
                                       tmp_path: Path, replica: int, name: str, tag: str, all_: bool) -> None:
    require_binary("skopeo", "skopeo")
    _, _, store = applied
    pub = store.publication_get(name)
    assert pub is not None
    expected = store.version_tag(pub.repo_id, pub.version, tag)
    layout = tmp_path / "layout"
    creds = ["--src-creds", "alice:s3cret"] if name.startswith("prod/") else []
    cmd = ["skopeo", "copy", "--src-tls-verify=false", "--preserve-digests", *creds, *(["--all"] if all_ else []),
           f"docker://{replicas[replica].host}/{name}:{tag}", f"oci:{layout}:{tag}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [str(expected)]
    for p in (layout / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
    # skopeo got the image or index with everything it references, all held by that version
    held = store.version_get(pub.repo_id, pub.version).content
    copied = {f"sha256:{p.name}" for p in (layout / "blobs" / "sha256").iterdir()}
    expected = narrow(Digest, expected)
    refs = store.manifest_refs([expected])[expected].children
    child_refs = store.manifest_refs(refs)
    needed = {str(expected), *map(str, refs), *(str(d) for r in child_refs.values() for d in r.children)}
    assert copied == needed and copied <= {str(d) for d, _kind in held.items()}


def test_protected_blob_is_not_redirected_without_credentials(applied: tuple[str, str, Store],
                                                              replicas: tuple[Server, Server]) -> None:
    _, _, store = applied
    pub = store.publication_get("prod/hello")
    assert pub is not None and pub.protected
    blob = next(iter(store.version_get(pub.repo_id, pub.version).content.blobs))
    for server in replicas:
        with requests.get(f"{server.url}/v2/prod/hello/blobs/{blob}", allow_redirects=False, timeout=10) as resp:
            assert resp.status_code == 401 and "Location" not in resp.headers
        with requests.get(f"{server.url}/v2/prod/hello/blobs/{blob}", allow_redirects=False, timeout=10,
                          auth=("alice", "s3cret")) as resp:
            assert resp.status_code == 307 and "X-Amz-Signature=" in resp.headers["Location"]
