"""Issue 16's "done when": a moving upstream tag synced 20 times with ``retain_versions: 2``
and ``prune: true``, then ``reconciler store gc``: the bytes the store keeps are the two
retained versions' content (plus the database), and the published version is intact and
pullable with skopeo through ``reconciler serve``. Once on the embedded store with blobs
in its folder, once on the PostgreSQL store with blobs (and manifests) in S3 (moto).

The 20 applies run seconds apart, so the publish grace period is off
(``RECONCILER_PUBLISH_GRACE=0``): with the default five minutes, every version a publish
left would still be served by digest, hence kept (test_apply_retention.py covers that).
"""

from __future__ import annotations

import hashlib
import json
import random
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler import api
from reconciler.model.content import ContentSet
from reconciler.plan.actions import DropVersions
from reconciler.store.protocol import Store
from reconciler.store.sql.grace import GRACE_ENV
from tests.support.cli import RunCli
from tests.support.imagegen import build_image
from tests.support.narrow import narrow
from tests.support.postgres import PostgresServer
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry
from tests.support.s3server import S3Server
from tests.support.serving import require_binary, run_server

pytestmark = pytest.mark.integration

ROUNDS = 20
#: random (incompressible) bytes per round's own layer, and of the layer every round shares
LAYER = 96 * 1024
BASE = 64 * 1024


def yaml_for(path: Path, registry: RunningRegistry, upstream: str) -> Path:
    path.write_text(f"""version: 1
registries:
  up: {{url: "{registry.url}", tls_verify: false}}
repositories:
  web:
    feed: up
    upstream_name: {upstream}
    tags: {{include: [latest]}}
    mirror: true
    prune: true
    retain_versions: 2
    publish: team/web
""")
    return path


def content_bytes(store: Store, content: ContentSet) -> int:
    return (sum(store.blob_size(d) for d in content.blobs)
            + sum(len(store.manifest_raw(d)[1]) for d in content.manifests | content.indexes))


@pytest.fixture(params=["sqlite-folder", "postgresql-s3"])
def backend(request: pytest.FixtureRequest, tmp_path: Path,
            monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str | None, dict[str, str]]]:
    """(store location, --blobs or None, extra environment for subprocesses)."""
    monkeypatch.setenv(GRACE_ENV, "0")
    if request.param == "sqlite-folder":
        yield str(tmp_path / "store"), None, {GRACE_ENV: "0"}
        return
    pg: PostgresServer = request.getfixturevalue("postgres_server")
    s3: S3Server = request.getfixturevalue("s3_server")
    for key, value in s3.env.items():
        monkeypatch.setenv(key, value)
    url = pg.checkout()
    try:
        yield url, s3.bucket_url("lifecycle"), {**s3.env, GRACE_ENV: "0"}
    finally:
        pg.checkin(url)


def stored_bytes(location: str, blobs: str | None, s3: S3Server | None) -> tuple[int, int]:
    """(bytes of blob and manifest files or objects, bytes of the database files)."""
    if blobs is None:
        root = Path(location)
        content = sum(p.stat().st_size for area in ("blobs", "manifests") for p in (root / area).rglob("*")
                      if p.is_file())
        db = sum(p.stat().st_size for p in root.glob("store.db*"))
        return content, db
    assert s3 is not None
    bucket, _, prefix = blobs[len("s3://"):].partition("/")
    client = s3.client()
    try:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix + "/")
        sizes = [int(o["Size"]) for page in pages for o in page.get("Contents", ())
                 if "/blobs/" in o["Key"] or "/manifests/" in o["Key"]]
    finally:
        client.close()
    return sum(sizes), 0


def test_moving_tag_20_times_with_retain_2_keeps_two_versions_of_bytes(
        backend: tuple[str, str | None, dict[str, str]], registry: RunningRegistry, repo_name: str,
        tmp_path: Path, request: pytest.FixtureRequest, run_cli: RunCli) -> None:
    location, blobs, env = backend
    s3: S3Server | None = request.getfixturevalue("s3_server") if blobs else None
    yaml = yaml_for(tmp_path / "repos.yaml", registry, repo_name)
    rnd = random.Random(16)
    base = rnd.randbytes(BASE)
    store = api.open_store(location, blobs)
    try:
        for i in range(ROUNDS):
            push_image(registry.url, repo_name, build_image(f"round-{i}", shared=(base, rnd.randbytes(LAYER))),
                       ["latest"])
            plan, result = api.apply_file(store, yaml)
            assert result.ok, result.to_json()
            if i >= 2:  # from the third round on, each apply drops the version two before it
                drop = narrow(DropVersions, plan.action("web/drop_versions/versions"))
                assert len(drop.versions) == 1 and drop.frees_bytes and drop.frees_bytes > LAYER
        repo = store.repository_get("web")
        versions = [v.number for v in store.version_list("web")]
        assert versions == [repo.latest_version - 1, repo.latest_version]
        assert repo.published_version == repo.latest_version
        kept = store.version_get("web", versions[0]).content.union(store.version_get("web").content)
        kept_bytes = content_bytes(store, kept)
        usage = store.usage()
        assert usage.unreferenced_bytes > (ROUNDS - 3) * LAYER  # waiting for gc
    finally:
        store.close()

    gc = run_cli("store", "gc", "--json", store=location, env={**env, **({"RECONCILER_BLOBS": blobs} if blobs else {})},
                 check=True)
    report = json.loads(gc.stdout)
    assert report["freed_bytes"] > (ROUNDS - 3) * LAYER and report["manifests_removed"] == ROUNDS - 2

    content, db = stored_bytes(location, blobs, s3)
    # exactly the two retained versions' content, not a byte of the 18 dropped ones
    assert content == kept_bytes, (content, kept_bytes)
    assert kept_bytes < BASE + 2 * LAYER + 16 * 1024
    assert db < 1024 * 1024  # the database (SQLite's file and WAL) stays small

    store = api.open_store(location, blobs)
    try:
        assert store.check().ok
        pub = store.publication_get("team/web")
        assert pub is not None
        expected = store.version_tag(pub.repo_id, pub.version, "latest")
    finally:
        store.close()
    require_binary("skopeo", "skopeo")
    serve_env = {**env, **({"RECONCILER_BLOBS": blobs} if blobs else {})}
    with run_server(location, tmp_path / "serve.log", workers=1, env=serve_env) as server:
        layout = tmp_path / "layout"
        proc = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--preserve-digests",
                               f"docker://{server.host}/team/web:latest", f"oci:{layout}:latest"],
                              capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stderr
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [str(expected)]
    for p in (layout / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
