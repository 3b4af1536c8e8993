"""Finding an image's referrers upstream (``ops.referrers.discover``) with real servers:
the distribution registry (no referrers API: one 404, then the tag-schema index and
cosign's tags from the tag list) and ``reconciler serve`` (the referrers API: one request
per digest); recursion (a signature of an SBOM), the artifact-type policy, request counts."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.model import Digest
from reconciler.model.referrers import ReferrerPolicy
from reconciler.model.registry import RegistryConfig
from reconciler.ops.referrers import discover
from reconciler.registry.client import RegistryClient
from reconciler.store.sqlite import SQLiteStore
from tests.support import supplychain as sc
from tests.support.imagegen import Image, build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry
from tests.support.serving import commit_tags, run_server

pytestmark = pytest.mark.integration


class Signed:
    """An image with a cosign signature and attestation (classic tags), an OCI 1.1 SBOM
    and a sigstore bundle signing that SBOM."""

    def __init__(self, name: str) -> None:
        self.image = build_image(name, oci=True)
        self.sig = sc.cosign_signature(self.image)
        self.att = sc.cosign_signature(self.image, layer_type=sc.DSSE)
        self.sbom = sc.oci_referrer(self.image, sc.SPDX, b'{"spdxVersion":"SPDX-2.3","n":"' + name.encode() + b'"}')
        self.sbom_sig = sc.oci_referrer(self.sbom, sc.SIGSTORE_BUNDLE, b'{"bundle":"' + name.encode() + b'"}')

    def cosign_tags(self) -> dict[str, Image]:
        return {sc.cosign_tag(self.image.digest): self.sig, sc.cosign_tag(self.image.digest, "att"): self.att}


def test_on_a_registry_without_the_api_the_tag_schema_and_cosign_tags(registry: RunningRegistry,
                                                                      repo_name: str) -> None:
    s = Signed("disc-dist")
    push_image(registry.url, repo_name, s.image, tags=("1.0",))
    for tag, img in s.cosign_tags().items():
        push_image(registry.url, repo_name, img, tags=(tag,))
    for referrer in (s.sbom, s.sbom_sig):
        push_image(registry.url, repo_name, referrer)
    push_image(registry.url, repo_name, sc.tag_schema_index([s.sbom]), tags=(sc.tag_schema_tag(s.image.digest),))
    push_image(registry.url, repo_name, sc.tag_schema_index([s.sbom_sig]), tags=(sc.tag_schema_tag(s.sbom.digest),))

    with RegistryClient(RegistryConfig(name="reg", url=registry.url)) as client:
        tags = client.tag_list(repo_name)
        mark = registry.mark()
        found = discover(client, repo_name, tags, [s.image.digest], ReferrerPolicy())
        sent = registry.requests_since(mark)
    assert found.api is False
    of_image = {f.digest: f for f in found.by_subject[s.image.digest]}
    assert set(of_image) == {s.sig.digest, s.att.digest, s.sbom.digest}
    assert of_image[s.sig.digest].tag == sc.cosign_tag(s.image.digest)
    assert of_image[s.sig.digest].artifact_type == sc.SIMPLE_SIGNING
    assert of_image[s.att.digest].artifact_type == sc.DSSE
    assert of_image[s.sbom.digest].artifact_type == sc.SPDX and of_image[s.sbom.digest].tag is None
    assert [f.digest for f in found.by_subject[s.sbom.digest]] == [s.sbom_sig.digest]
    # one 404 teaches that there is no API; then only what the tag list names is read
    referrer_calls = [a for a in sent if "/referrers/" in a.path]
    assert [a.status for a in referrer_calls] == [404]
    assert len(sent) == 1 + 1 + 2 + 1 == found.requests  # 404, image's index, .sig, .att, the SBOM's index
    assert set(found.manifests) == {s.sig.digest, s.att.digest}

    with RegistryClient(RegistryConfig(name="reg", url=registry.url)) as client:
        only = discover(client, repo_name, tags, [s.image.digest], ReferrerPolicy(artifact_types=(sc.SPDX,)))
    assert [f.digest for f in only.all()] == [s.sbom.digest]
    with RegistryClient(RegistryConfig(name="reg", url=registry.url)) as client:
        none = discover(client, repo_name, tags, [s.image.digest], ReferrerPolicy(enabled=False))
    assert none.all() == [] and none.requests == 0


def test_against_reconciler_serve_the_referrers_api(tmp_path: Path) -> None:
    s = Signed("disc-serve")
    store = SQLiteStore(tmp_path / "store")
    try:
        v = commit_tags(store, "app", {"1.0": s.image, **s.cosign_tags()}, extra=(s.sbom, s.sbom_sig))
        store.publish("app", name="up/app", version=v, protected=False)
    finally:
        store.close()
    with run_server(tmp_path / "store", tmp_path / "serve.log") as srv, \
            RegistryClient(RegistryConfig(name="serve", url=srv.url)) as client:
        tags = client.tag_list("up/app")
        before = client.stats.counts.get("referrers", 0)
        found = discover(client, "up/app", tags, [s.image.digest], ReferrerPolicy())
        asked = client.stats.counts.get("referrers", 0) - before
    assert found.api is True
    assert {f.digest for f in found.by_subject[s.image.digest]} == {s.sig.digest, s.att.digest, s.sbom.digest}
    assert [f.digest for f in found.by_subject[s.sbom.digest]] == [s.sbom_sig.digest]
    # one referrers request per digest visited: the image, its three referrers, the SBOM's one
    assert asked == 5
    assert found.requests == 5 + 2  # and the two cosign tags, read for their kind


def test_recursion_is_bounded(registry: RunningRegistry, repo_name: str) -> None:
    image = build_image("disc-chain", oci=True)
    push_image(registry.url, repo_name, image, tags=("1.0",))
    chain: list[Image] = []
    subject = image
    for i in range(8):  # each signs the one before
        nxt = sc.oci_referrer(subject, sc.SIGSTORE_BUNDLE, f'{{"level":{i}}}'.encode())
        push_image(registry.url, repo_name, nxt)
        push_image(registry.url, repo_name, sc.tag_schema_index([nxt]), tags=(sc.tag_schema_tag(subject.digest),))
        chain.append(nxt)
        subject = nxt
    with RegistryClient(RegistryConfig(name="reg", url=registry.url)) as client:
        found = discover(client, repo_name, client.tag_list(repo_name), [image.digest], ReferrerPolicy())
    got: set[Digest] = {f.digest for f in found.all()}
    assert got == {c.digest for c in chain[:5]}  # MAX_DEPTH levels below the first
