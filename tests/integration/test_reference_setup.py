"""docs/deployment.md's reference setup, run as written: two ``reconciler serve
--blob-redirect`` replicas over a PostgreSQL store with blobs and manifests in S3 (moto),
behind HAProxy configured with the HAProxy block of that page (only the address, the
servers and the check interval are changed here; TLS is left out on loopback).

skopeo pulls through the load balancer; then one replica is stopped: HAProxy's readiness
check (``/readyz``) takes it out and pulls go on through the other replica.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from reconciler.model import mediatypes as mt
from reconciler.store.postgres import PostgresStore
from tests.support.imagegen import Image, build_image
from tests.support.s3server import S3Server
from tests.support.serving import REPO_ROOT, Server, commit_tags, free_port, require_binary, run_server, stop

pytestmark = pytest.mark.integration

DOC = REPO_ROOT / "docs" / "deployment.md"
ACCEPT = {"Accept": ", ".join([mt.OCI_INDEX, mt.OCI_MANIFEST, mt.DOCKER_MANIFEST_LIST, mt.DOCKER_SCHEMA2])}


def haproxy_config(port: int, replicas: list[Server]) -> str:
    """The documented configuration, pointed at this test's replicas."""
    text = DOC.read_text()
    block = re.search(r"```\n# /etc/haproxy/haproxy\.cfg[^\n]*\n(.*?)```", text, re.S)
    assert block, "docs/deployment.md lost its HAProxy block"
    config = block.group(1)
    config, n = re.subn(r"bind :443 ssl crt \S+", f"bind 127.0.0.1:{port}", config)
    assert n == 1
    servers = [line for line in config.splitlines() if line.strip().startswith("server ")]
    assert len(servers) == 2
    for line, (name, replica) in zip(servers, zip("ab", replicas, strict=True), strict=True):
        config = config.replace(line, f"    server {name} {replica.host} check")
    # the documented 2 s interval, shortened so the test does not wait
    config, n = re.subn(r"inter 2s", "inter 300ms", config)
    assert n == 1
    return config


@pytest.fixture
def published(postgres_url: str, s3_env: S3Server) -> Iterator[tuple[str, str, Image]]:
    blobs = s3_env.bucket_url("reference")
    store = PostgresStore(postgres_url, blobs=blobs)
    image = build_image("reference-v1", layers=2)
    try:
        store.publish("app", name="prod/app", version=commit_tags(store, "app", {"1.0": image}), protected=False)
    finally:
        store.close()
    yield postgres_url, blobs, image


def test_two_replicas_behind_haproxy_with_the_documented_readiness_check(
        published: tuple[str, str, Image], s3_env: S3Server, tmp_path: Path) -> None:
    require_binary("skopeo", "skopeo")
    haproxy = shutil.which("haproxy") or shutil.which("haproxy", path="/usr/sbin")
    assert haproxy, "haproxy is not installed: apt-get install haproxy (scripts/setup.sh --test does it)"
    url, blobs, image = published
    env = {**s3_env.env, "RECONCILER_BLOBS": blobs}
    args = ["--blob-redirect", "--threads", "4", "--s3-timeout", "3", "--s3-attempts", "2",
            "--forwarded-allow-ips", "127.0.0.1"]  # HAProxy's address here
    with run_server(url, tmp_path / "a.log", workers=1, serve_args=args, env=env) as a, \
            run_server(url, tmp_path / "b.log", workers=1, serve_args=args, env=env) as b:
        port = free_port()
        cfg = tmp_path / "haproxy.cfg"
        cfg.write_text(haproxy_config(port, [a, b]))
        check = subprocess.run([haproxy, "-c", "-f", str(cfg)], capture_output=True, text=True, timeout=30)
        assert check.returncode == 0, check.stdout + check.stderr
        lb_log = tmp_path / "haproxy.log"
        with open(lb_log, "wb") as log:
            lb = subprocess.Popen([haproxy, "-db", "-f", str(cfg)], stdout=log, stderr=subprocess.STDOUT)
        try:
            lb_url = f"http://127.0.0.1:{port}"
            _wait(lambda: requests.get(lb_url + "/readyz", timeout=2).status_code == 200, "HAProxy to answer")
            _pull(f"127.0.0.1:{port}", image, tmp_path / "first")

            stop(a.proc)  # a replica goes away (deploy, crash): the check takes it out
            time.sleep(1.5)  # fall 2 x inter 300ms, and then some
            for _ in range(10):  # round robin would send every other request to the stopped one
                resp = requests.get(f"{lb_url}/v2/prod/app/manifests/1.0", headers=ACCEPT, timeout=10)
                assert resp.status_code == 200 and resp.headers["Docker-Content-Digest"] == str(image.digest)
            _pull(f"127.0.0.1:{port}", image, tmp_path / "second")
        finally:
            stop(lb)
    assert "is DOWN" in lb_log.read_text(errors="replace")  # HAProxy saw it go, by the readiness check


def _wait(ready: Callable[[], object], what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if ready():
                return
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.2)


def _pull(host: str, image: Image, layout: Path) -> None:
    proc = subprocess.run(["skopeo", "copy", "--src-tls-verify=false", "--preserve-digests",
                           f"docker://{host}/prod/app:1.0", f"oci:{layout}:1.0"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    index = json.loads((layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [str(image.digest)]
    for p in (layout / "blobs" / "sha256").iterdir():
        assert hashlib.sha256(p.read_bytes()).hexdigest() == p.name
