"""The scale-out trial's failure cases (issue 20), on the real parts: PostgreSQL from its
binaries, moto's S3 server behind a TCP proxy that freezes (connections accepted by the
kernel, then no byte back: a stalled endpoint, not a refusing one), and two ``reconciler
serve`` replicas under a bounded load.

- A stalled S3 costs a blob GET about one ``--s3-timeout``, then a fast ``503`` with
  ``Retry-After``; ``GET /v2/``, ``tags/list``, HEADs, cached manifests and ``/healthz``
  keep answering at once on both replicas; ``/readyz`` says not ready until S3 is back.
- HEADs come from the database: they answer while S3 is frozen.
- A replica starts while S3 does not answer, serves what needs only the database, is not
  ready, and becomes ready (store identity checked) once S3 answers again.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from reconciler.model import mediatypes as mt
from reconciler.store.postgres import PostgresStore
from tests.support.imagegen import ManifestImage, build_image
from tests.support.s3server import S3Server, aws_env
from tests.support.serving import Server, commit_tags, run_server
from tests.support.tcpproxy import TcpProxy

pytestmark = pytest.mark.integration

ACCEPT = {"Accept": ", ".join([mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_SCHEMA2])}
#: the replicas' S3 budget: one attempt of one second
SERVE_ARGS = ["--threads", "4", "--s3-timeout", "1", "--s3-attempts", "1"]
#: what "answers at once" means here, with a 2-core machine shared by other tests
QUICK = 2.0


@dataclass
class World:
    url: str
    blobs: str
    proxy: TcpProxy
    env: dict[str, str]
    images: dict[str, ManifestImage]
    logs: Path


@pytest.fixture
def world(postgres_url: str, s3_env: S3Server, tmp_path: Path) -> Iterator[World]:
    """A PostgreSQL + S3 store with ``team/app`` published (tags v1, v2), filled directly;
    a freezing proxy in front of the S3 server for the replicas."""
    blobs = s3_env.bucket_url("faults")
    store = PostgresStore(postgres_url, blobs=blobs)
    images = {"v1": build_image("faults-v1", layers=3), "v2": build_image("faults-v2", layers=2)}
    try:
        version = commit_tags(store, "app", images)
        store.publish("app", name="team/app", version=version, protected=False)
    finally:
        store.close()
    proxy = TcpProxy(urlsplit(s3_env.endpoint).port or 80).start()
    env = {**aws_env(proxy.endpoint), "RECONCILER_BLOBS": blobs}
    try:
        yield World(postgres_url, blobs, proxy, env, images, tmp_path)
    finally:
        proxy.stop()


def _replica(world: World, name: str) -> Iterator[Server]:
    with run_server(world.url, world.logs / f"{name}.log", workers=1, serve_args=SERVE_ARGS, env=world.env) as s:
        yield s


@pytest.fixture
def replicas(world: World) -> Iterator[tuple[Server, Server]]:
    gen_a, gen_b = _replica(world, "a"), _replica(world, "b")
    a, b = next(gen_a), next(gen_b)
    try:
        yield a, b
    finally:
        for gen in (gen_b, gen_a):
            next(gen, None)


def _timed(method: str, url: str, headers: Mapping[str, str] | None = None) -> tuple[requests.Response, float]:
    started = time.monotonic()
    resp = requests.request(method, url, timeout=30, headers=headers)
    return resp, time.monotonic() - started


def _blob(img: ManifestImage, i: int = -1) -> str:
    return img.manifest.layers[i].digest.__str__()


def _wait_ready(server: Server, deadline: float) -> dict[str, object]:
    while True:
        resp = requests.get(server.url + "/readyz", timeout=30)
        if resp.status_code == 200 or time.monotonic() > deadline:
            return {"status": resp.status_code, **resp.json()}
        time.sleep(0.5)


def test_a_stalled_s3_gives_fast_503s_and_metadata_keeps_answering(
        world: World, replicas: tuple[Server, Server]) -> None:
    v1, v2 = world.images["v1"], world.images["v2"]
    # before the stall: everything works, and each replica caches v1's manifest
    for server in replicas:
        assert requests.get(f"{server.url}/v2/team/app/manifests/v1", headers=ACCEPT, timeout=30).status_code == 200
        resp = requests.get(f"{server.url}/v2/team/app/blobs/{_blob(v1)}", timeout=30)
        assert resp.status_code == 200 and hashlib.sha256(resp.content).hexdigest() == _blob(v1)[7:]
        assert requests.get(server.url + "/readyz", timeout=30).status_code == 200

    world.proxy.freeze()
    # a bounded load of blob GETs that need S3, on both replicas at once
    layers = [str(d.digest) for d in v1.manifest.layers + v2.manifest.layers]
    wanted = [(replicas[i % 2], layers[i % len(layers)]) for i in range(16)]
    with ThreadPoolExecutor(max_workers=16) as pool:
        load = [pool.submit(_timed, "GET", f"{s.url}/v2/team/app/blobs/{d}") for s, d in wanted]
        time.sleep(0.3)  # the load is in flight: now what needs no S3 must still answer at once
        for server in replicas:
            for method, path, headers in [
                ("GET", "/v2/", {}), ("GET", "/healthz", {}), ("GET", "/v2/team/app/tags/list", {}),
                ("HEAD", f"/v2/team/app/blobs/{_blob(v2)}", {}),  # never read: from the database
                ("HEAD", "/v2/team/app/manifests/v2", ACCEPT),  # never cached: from the database
                ("GET", "/v2/team/app/manifests/v1", ACCEPT),  # cached before the stall
            ]:
                resp, took = _timed(method, server.url + path, headers=headers)
                assert resp.status_code == 200 and took < QUICK, (server.url, method, path, resp.status_code, took)
        results = [f.result() for f in load]
    for resp, took in results:
        # one S3 timeout (1 s) at most, then the answer; most never wait at all
        assert resp.status_code == 503 and took < 1 + QUICK, (resp.status_code, took)
        assert int(resp.headers["Retry-After"]) >= 1
        assert resp.json()["errors"][0]["code"] == "UNAVAILABLE"
    # the circuit is open: a manifest that needs S3 is refused without waiting
    resp, took = _timed("GET", f"{replicas[0].url}/v2/team/app/manifests/v2", headers=ACCEPT)
    assert resp.status_code == 503 and took < QUICK and "Retry-After" in resp.headers
    ready = requests.get(replicas[0].url + "/readyz", timeout=30)
    assert ready.status_code == 503 and ready.json()["checks"]["database"] == "ok"
    assert ready.json()["checks"]["blob_storage"] != "ok"

    world.proxy.thaw()
    for server in replicas:  # after the breaker's cool-down, a readiness check closes it again
        assert _wait_ready(server, time.monotonic() + 30)["status"] == 200
        resp = requests.get(f"{server.url}/v2/team/app/blobs/{_blob(v2)}", timeout=30)
        assert resp.status_code == 200 and hashlib.sha256(resp.content).hexdigest() == _blob(v2)[7:]


def test_heads_and_cached_manifests_need_no_s3(world: World, replicas: tuple[Server, Server]) -> None:
    v1 = world.images["v1"]
    server = replicas[0]
    first = requests.get(f"{server.url}/v2/team/app/manifests/{v1.digest}", headers=ACCEPT, timeout=30)
    assert first.status_code == 200
    world.proxy.freeze()
    again = requests.get(f"{server.url}/v2/team/app/manifests/{v1.digest}", headers=ACCEPT, timeout=5)
    assert again.status_code == 200 and again.content == first.content
    for ref in ("v1", str(v1.digest)):
        head = requests.head(f"{server.url}/v2/team/app/manifests/{ref}", headers=ACCEPT, timeout=5)
        assert head.status_code == 200
        assert head.headers["Docker-Content-Digest"] == str(v1.digest)
        assert int(head.headers["Content-Length"]) == len(first.content)
        assert head.headers["Content-Type"] == mt.DOCKER_SCHEMA2
    for desc in v1.manifest.layers:
        head = requests.head(f"{server.url}/v2/team/app/blobs/{desc.digest}", timeout=5)
        assert head.status_code == 200 and int(head.headers["Content-Length"]) == desc.size
        assert head.headers["Docker-Content-Digest"] == str(desc.digest)
    # a manifest this replica never read needs S3: a fast 503, not a hang
    other = requests.get(f"{replicas[1].url}/v2/team/app/manifests/v2", headers=ACCEPT, timeout=10)
    assert other.status_code == 503


def test_a_replica_starts_while_s3_is_unreachable_and_becomes_ready_when_it_answers(world: World) -> None:
    v1 = world.images["v1"]
    world.proxy.freeze()
    with run_server(world.url, world.logs / "late.log", workers=1, serve_args=SERVE_ARGS, env=world.env) as server:
        tags = requests.get(f"{server.url}/v2/team/app/tags/list", timeout=10)
        assert tags.status_code == 200 and json.loads(tags.content)["tags"] == ["v1", "v2"]
        head = requests.head(f"{server.url}/v2/team/app/blobs/{_blob(v1)}", timeout=10)
        assert head.status_code == 200
        ready = requests.get(server.url + "/readyz", timeout=10)
        assert ready.status_code == 503 and ready.json()["checks"]["database"] == "ok", ready.text
        blob, took = _timed("GET", f"{server.url}/v2/team/app/blobs/{_blob(v1)}")
        assert blob.status_code == 503 and took < 1 + QUICK

        world.proxy.thaw()
        assert _wait_ready(server, time.monotonic() + 30)["status"] == 200
        blob = requests.get(f"{server.url}/v2/team/app/blobs/{_blob(v1)}", timeout=10)
        assert blob.status_code == 200 and hashlib.sha256(blob.content).hexdigest() == _blob(v1)[7:]
        assert "answers and belongs to this store" in server.log()
