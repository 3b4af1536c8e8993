"""Signed images through the whole road with real components: a distribution registry
(no referrers API) holds an image, its cosign classic signature (``sha256-<hex>.sig``), an
OCI 1.1 SBOM with the tag-schema index (``sha256-<hex>``) and an artifact pushed by ORAS's
Python SDK (an independent client) with a subject; ``reconciler sync`` mirrors them,
``reconciler serve`` answers the referrers API, skopeo reads the same bytes and
descriptors, the signature still verifies after the mirror, and an OCI export carries
it all."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import oras.client
import oras.oci
import pytest
import requests
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from reconciler.model import Digest
from reconciler.model import mediatypes as mt
from tests.support import supplychain as sc
from tests.support.imagegen import Image, ManifestImage, build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry
from tests.support.serving import REPO_ROOT, Server, require_binary, run_server

pytestmark = pytest.mark.integration

SCAN_CONFIG = "application/vnd.example.scan.config.v1+json"


def reconciler(store: Path, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "reconciler", "--store", str(store), *args], capture_output=True,
                          text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr


def skopeo(*args: str) -> str:
    proc = subprocess.run(["skopeo", *args], capture_output=True, text=True, timeout=120)
    if proc.returncode != 0:
        raise AssertionError(f"skopeo {' '.join(args)} exited {proc.returncode}:\n{proc.stderr}")
    return proc.stdout


def oras_attach(registry: RunningRegistry, name: str, subject: Image, tmp: Path) -> Digest:
    """ORAS's SDK pushes a scan report referring to ``subject`` (tagged ``scan``: it
    keeps no tag-schema index itself); returns the manifest's digest."""
    report = tmp / "report.json"
    report.write_text('{"vulnerabilities": []}')
    config = tmp / "config.json"
    config.write_text('{"scanner": "example"}')
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    m = subject.manifest
    resp = client.push(target=f"{registry.host}/{name}:scan", files=[f"{report}:application/vnd.example.scan+json"],
                       manifest_config=f"{config}:{SCAN_CONFIG}", disable_path_validation=True,
                       subject=oras.oci.Subject(m.media_type, str(m.digest), len(m.raw)),
                       manifest_annotations={"org.example.scanner": "example 1.0"})
    return Digest.parse(resp.headers["Docker-Content-Digest"])


# the server, the repository's name, the image, its cosign signature, its SBOM, the ORAS
# artifact's digest, the signing key, the fixture's folder
Mirrored = tuple[Server, str, ManifestImage, ManifestImage, ManifestImage, Digest, ec.EllipticCurvePrivateKey, Path]


@pytest.fixture(scope="module")
def mirrored(registry: RunningRegistry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mirrored]:
    require_binary("skopeo", "skopeo")
    root = tmp_path_factory.mktemp("referrers-serve")
    name = "supply/app"
    key = sc.new_key()
    image = build_image("signed-app", oci=True)
    push_image(registry.url, name, image, tags=("1.0",))
    sig = sc.cosign_signature(image, key, docker_reference=f"{registry.host}/{name}")
    push_image(registry.url, name, sig, tags=(sc.cosign_tag(image.digest),))
    sbom = sc.oci_referrer(image, sc.SPDX, b'{"spdxVersion":"SPDX-2.3","name":"signed-app"}',
                           annotations={"org.opencontainers.image.created": "2026-12-03T05:00:00Z"})
    push_image(registry.url, name, sbom)
    push_image(registry.url, name, sc.tag_schema_index([sbom]), tags=(sc.tag_schema_tag(image.digest),))
    scan = oras_attach(registry, name, image, root)

    store = root / "store"
    reconciler(store, "sync", "app", "--feed", registry.url, "--upstream-name", name)
    reconciler(store, "publish", "app", "--name", name)
    with run_server(store, root / "server.log") as srv:
        yield srv, name, image, sig, sbom, scan, key, root


def referrers(srv: Server, name: str, digest: Digest, query: str = "") -> tuple[dict[str, str], list[dict[str, Any]]]:
    resp = requests.get(f"{srv.url}/v2/{name}/referrers/{digest}" + (f"?{query}" if query else ""), timeout=30)
    assert resp.status_code == 200 and resp.headers["Content-Type"] == mt.OCI_INDEX
    doc = resp.json()
    assert doc["schemaVersion"] == 2 and doc["mediaType"] == mt.OCI_INDEX
    listed: list[dict[str, Any]] = doc["manifests"]  # JSON: str, int or a map per key
    return dict(resp.headers), listed


def test_referrers_api_lists_the_mirrored_sbom_and_the_oras_artifact(mirrored: Mirrored) -> None:
    srv, name, image, _, sbom, scan, _, _ = mirrored
    headers, listed = referrers(srv, name, image.digest)
    assert sorted(str(d["digest"]) for d in listed) == sorted([str(sbom.digest), str(scan)])
    by_digest = {d["digest"]: d for d in listed}
    assert by_digest[str(sbom.digest)] == sc.referrer_descriptor(sbom)
    # ORAS's SDK writes no artifactType: the config's media type is listed
    assert by_digest[str(scan)]["artifactType"] == SCAN_CONFIG
    assert by_digest[str(scan)]["annotations"] == {"org.example.scanner": "example 1.0"}
    assert "OCI-Filters-Applied" not in headers
    headers, listed = referrers(srv, name, image.digest, urlencode({"artifactType": sc.SPDX}))
    assert headers["OCI-Filters-Applied"] == "artifactType" and [d["digest"] for d in listed] == [str(sbom.digest)]
    _, listed = referrers(srv, name, Digest.of(b"not a manifest anyone refers to"))
    assert listed == []


def test_skopeo_agrees_with_the_referrers_descriptors(mirrored: Mirrored) -> None:
    srv, name, image, _, _, _, _, _ = mirrored
    _, listed = referrers(srv, name, image.digest)
    for d in listed:
        raw = skopeo("inspect", "--raw", "--tls-verify=false", f"docker://{srv.host}/{name}@{d['digest']}").encode()
        doc = json.loads(raw)
        assert str(Digest.of(raw)) == d["digest"] and len(raw) == d["size"]
        assert doc["mediaType"] == d["mediaType"]
        assert (doc.get("artifactType") or doc["config"]["mediaType"]) == d["artifactType"]
        assert doc.get("annotations") == d.get("annotations")
        assert doc["subject"]["digest"] == str(image.digest)


def test_the_mirrored_cosign_signature_still_verifies(mirrored: Mirrored) -> None:
    srv, name, image, sig, _, _, key, root = mirrored
    out = root / "sig-dir"
    skopeo("copy", "--all", "--src-tls-verify=false", f"docker://{srv.host}/{name}:{sc.cosign_tag(image.digest)}",
           f"dir:{out}")
    manifest = json.loads((out / "manifest.json").read_bytes())
    assert Digest.of((out / "manifest.json").read_bytes()) == sig.digest
    layer = manifest["layers"][0]
    assert layer["mediaType"] == sc.SIMPLE_SIGNING
    payload = (out / layer["digest"].split(":", 1)[1]).read_bytes()
    assert json.loads(payload)["critical"]["image"]["docker-manifest-digest"] == str(image.digest)
    signature = base64.b64decode(layer["annotations"][sc.COSIGN_SIGNATURE_ANNOTATION])
    key.public_key().verify(signature, payload, ec.ECDSA(hashes.SHA256()))  # raises when it does not verify


def test_an_oci_export_carries_the_referrers(mirrored: Mirrored) -> None:
    _, _, image, sig, sbom, scan, _, root = mirrored
    out = root / "app.tar"
    reconciler(root / "store", "export", "app", "-o", str(out), "--format", "oci")
    with tarfile.open(out) as tf:
        names = set(tf.getnames())
    for d in (image.digest, sig.digest, sbom.digest, scan):
        assert f"blobs/sha256/{d.hex}" in names
