"""Issue 22's done-when, end to end with the real CLI: one apply of a repos.yaml that
mirrors a signed image from the distribution registry (no referrers API: cosign's classic
``.sig`` tag and an SBOM behind the tag-schema index, made here in cosign's and OCI 1.1's
byte formats) and promotes it by ``copy`` into a repository with a ``verify:`` policy
leaves the signature and the SBOM pullable from both published names (our server's
referrers API lists the SBOM, the classic tag resolves, the payload verifies), while a
repository promoting an unsigned tag is refused and left uncreated."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests

from reconciler.model import Digest, Manifest, parse_manifest
from reconciler.model.signatures import Key, SignatureLayer, parse_key, signature_layers, verify_image
from tests.support import supplychain as sc
from tests.support.cli import RunCli
from tests.support.imagegen import build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry
from tests.support.serving import run_server

pytestmark = pytest.mark.integration

MANIFEST_ACCEPT = "application/vnd.oci.image.manifest.v1+json"


def test_mirror_and_promote_a_signed_image_in_one_apply(registry: RunningRegistry, repo_name: str, tmp_path: Path,
                                                         run_cli: RunCli) -> None:
    key = sc.new_key()
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "release.pub").write_bytes(sc.public_pem(key))
    image = build_image("promote-signed", oci=True)
    unsigned = build_image("promote-unsigned", oci=True)
    sig = sc.cosign_signature(image, key, docker_reference=f"{registry.url.split('://')[1]}/{repo_name}")
    sbom = sc.oci_referrer(image, sc.SPDX, b'{"spdxVersion":"SPDX-2.3","name":"promote"}')
    sig_tag = sc.cosign_tag(image.digest)
    push_image(registry.url, repo_name, image, tags=("1.0",))
    push_image(registry.url, repo_name, unsigned, tags=("2.0",))
    push_image(registry.url, repo_name, sig, tags=(sig_tag,))
    push_image(registry.url, repo_name, sbom)
    push_image(registry.url, repo_name, sc.tag_schema_index([sbom]), tags=(sc.tag_schema_tag(image.digest),))

    yaml = tmp_path / "repos.yaml"
    yaml.write_text(f"""version: 1
repositories:
  staging:
    feed: {registry.url}
    upstream_name: {repo_name}
    tags: {{include: ["1.*", "2.*"]}}
    publish: staging/app
  prod:
    copy: [{{from: staging, tags: ["1.0"]}}]
    verify: {{cosign_keys: [keys/release.pub]}}
    publish: prod/app
  edge:
    copy: [{{from: staging, tags: ["2.0"]}}]
    verify: {{cosign_keys: [keys/release.pub]}}
    publish: edge/app
""")
    store = tmp_path / "store"
    # the plan checks the signature it is about to bring in: the refresh reads the one
    # payload the store lacks (and no other blob), and writes nothing
    mark = registry.mark()
    planned = run_cli("plan", "-f", str(yaml), "--json", store=store)
    assert planned.returncode == 1, planned.stderr
    payload_digest = sig.manifest.layers[0].digest
    blobs = [a.path for a in registry.requests_since(mark) if a.kind == "blob"]
    assert blobs == [f"/v2/{repo_name}/blobs/{payload_digest}"], blobs
    assert not store.exists()
    applied = run_cli("apply", "-f", str(yaml), "--json", store=store)
    # the refused repository makes the apply exit 1; everything else is applied
    assert applied.returncode == 1, applied.stdout + applied.stderr
    doc = json.loads(applied.stdout)
    refused = doc["plan"]["failed_tags"]
    assert refused == [{"repo": "edge", "tag": "2.0", "refused": True,
                        "error": "no signature verified by keys/release.pub (the image has no cosign signature)"}]
    ops = {(a["repo"], a["op"]) for a in doc["plan"]["actions"]}
    assert {("staging", "sync_referrers"), ("prod", "copy_tag"), ("prod", "copy_referrers")} <= ops
    assert not {r for r, _ in ops} & {"edge"}
    repos = {r["id"] for r in json.loads(run_cli("repo", "list", "--json", store=store, check=True).stdout)}
    assert repos == {"staging", "prod"}

    with run_server(store, tmp_path / "serve.log") as srv:
        for name in ("staging/app", "prod/app"):
            listed = requests.get(f"{srv.url}/v2/{name}/referrers/{image.digest}", timeout=30)
            assert listed.status_code == 200
            assert [d["digest"] for d in listed.json()["manifests"]] == [str(sbom.digest)], name
            got = requests.get(f"{srv.url}/v2/{name}/manifests/{sig_tag}", headers={"Accept": MANIFEST_ACCEPT},
                               timeout=30)
            assert got.status_code == 200 and got.content == sig.manifest.raw, name
            payload = requests.get(f"{srv.url}/v2/{name}/blobs/{payload_digest}", timeout=30)
            assert payload.status_code == 200 and payload.content == sig.blobs[str(payload_digest)]
            sbom_got = requests.get(f"{srv.url}/v2/{name}/manifests/{sbom.digest}",
                                    headers={"Accept": MANIFEST_ACCEPT}, timeout=30)
            assert sbom_got.status_code == 200 and sbom_got.content == sbom.manifest.raw
            # the signature served verifies with the public key, as cosign verify would check it
            signature = parse_manifest(got.content)
            assert isinstance(signature, Manifest)
            served = Served(signature, payload.content)
            ok, reason = verify_image(served, image.digest, [release_key(tmp_path)])
            assert ok, reason
        assert requests.get(f"{srv.url}/v2/edge/app/tags/list", timeout=30).status_code == 404

    verified = run_cli("verify", "prod", "--key", str(tmp_path / "keys" / "release.pub"), store=store)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    # a second plan has nothing to add and reads the payload from the store (no blob
    # request); the refusal stands until 2.0 is signed
    mark = registry.mark()
    again = run_cli("plan", "-f", str(yaml), "--json", store=store)
    assert again.returncode == 1 and json.loads(again.stdout)["actions"] == []
    assert [a.path for a in registry.requests_since(mark) if a.kind == "blob"] == []


def release_key(root: Path) -> Key:
    return parse_key((root / "keys" / "release.pub").read_bytes(), "keys/release.pub")


class Served:
    """A ``SignatureView`` of what the server answered: the classic tag's manifest and its payload."""

    def __init__(self, manifest: Manifest, payload: bytes) -> None:
        self.manifest, self.layers, self.payload_bytes = manifest, signature_layers(manifest), payload

    def classic_signature(self, digest: Digest) -> Digest | None:
        return self.manifest.digest

    def referrers(self, digest: Digest) -> list[Digest]:
        return []

    def signatures_in(self, digest: Digest) -> tuple[SignatureLayer, ...]:
        return self.layers if digest == self.manifest.digest else ()

    def payload(self, blob: Digest) -> bytes | None:
        return self.payload_bytes if blob == self.layers[0].payload else None

    def children(self, digest: Digest) -> list[Digest]:
        return []
