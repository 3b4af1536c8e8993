"""OCI artifacts in the content model: ``artifactType``, the empty config, configs of
other media types, ``subject`` on manifests and indexes; Docker's formats unchanged."""

from __future__ import annotations

import json

import pytest

from reconciler.errors import ManifestInvalid
from reconciler.model import Digest, Index, Manifest, parse_manifest
from reconciler.model import mediatypes as mt
from reconciler.model.referrers import Referrer, cosign_tags, referrers_index, tag_schema_tag
from tests.support import supplychain as sc
from tests.support.imagegen import build_image, build_multiarch


def test_oci_11_artifact_with_empty_config_and_subject_is_parsed() -> None:
    image = build_image("app", oci=True)
    sbom = sc.oci_referrer(image, sc.SPDX, b'{"spdxVersion":"SPDX-2.3"}',
                           annotations={"org.opencontainers.image.created": "2026-12-03T05:00:00Z"})
    m = parse_manifest(sbom.manifest.raw, mt.OCI_MANIFEST)
    assert isinstance(m, Manifest)
    assert m.artifact_type == sc.SPDX and m.referrer_type == sc.SPDX
    assert m.config is not None and m.config.media_type == mt.OCI_EMPTY and m.config.size == 2
    assert m.subject is not None and m.subject.digest == image.digest and m.subject.size == len(image.manifest.raw)
    assert m.subject.media_type == mt.OCI_MANIFEST
    # the empty config is a blob like any other: stored, verified, served
    assert str(m.config.digest) == "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
    assert m.config.digest in m.references()
    assert Referrer.of(m).to_json() == {
        "mediaType": mt.OCI_MANIFEST, "digest": str(m.digest), "size": len(m.raw), "artifactType": sc.SPDX,
        "annotations": {"org.opencontainers.image.created": "2026-12-03T05:00:00Z"}}


def test_without_artifact_type_the_config_media_type_is_listed() -> None:
    image = build_image("app", oci=True)
    old = sc.oci_referrer(image, "application/vnd.example.sbom", b"sbom", empty_config=False,
                          config_type="application/vnd.example.sbom.config.v1+json")
    m = parse_manifest(old.manifest.raw)
    assert isinstance(m, Manifest) and m.artifact_type is None
    assert m.referrer_type == "application/vnd.example.sbom.config.v1+json"
    # a cosign classic signature: an image config, no subject (found by its tag)
    sig = parse_manifest(sc.cosign_signature(image).manifest.raw)
    assert isinstance(sig, Manifest) and sig.subject is None and sig.referrer_type == mt.OCI_CONFIG
    assert sig.layers[0].media_type == sc.SIMPLE_SIGNING
    assert sc.COSIGN_SIGNATURE_ANNOTATION in sig.layers[0].annotations


def test_index_with_subject_and_artifact_type() -> None:
    image = build_image("app", oci=True)
    multi = build_multiarch("multi", oci=True)
    doc = json.loads(multi.manifest.raw)
    doc.update(artifactType="application/vnd.example.bundle", subject=sc.subject_descriptor(image),
               annotations={"a": "b"})
    idx = parse_manifest(json.dumps(doc).encode())
    assert isinstance(idx, Index)
    assert idx.artifact_type == "application/vnd.example.bundle" == idx.referrer_type
    assert idx.subject is not None and idx.subject.digest == image.digest
    assert idx.children() == multi.manifest.children()


@pytest.mark.parametrize("subject, message", [
    ("sha256:abc", "expected a descriptor"),
    ({"mediaType": mt.OCI_MANIFEST, "digest": "sha256:" + "0" * 64}, "'mediaType' and 'size' are required"),
    ({"digest": "sha256:" + "0" * 64, "size": 3}, "'mediaType' and 'size' are required"),
    ({"mediaType": mt.OCI_MANIFEST, "digest": "md5:00", "size": 3}, "subject"),
])
def test_malformed_subject_is_refused(subject: object, message: str) -> None:
    doc = json.loads(build_image("app", oci=True).manifest.raw)
    doc["subject"] = subject
    with pytest.raises(ManifestInvalid, match=message):
        parse_manifest(json.dumps(doc).encode())


@pytest.mark.parametrize("value", [7, "", "spdx", "application/spdx+json; charset=utf-8"])
def test_artifact_type_must_be_a_media_type(value: object) -> None:
    doc = json.loads(build_image("app", oci=True).manifest.raw)
    doc["artifactType"] = value
    with pytest.raises(ManifestInvalid, match="artifactType"):
        parse_manifest(json.dumps(doc).encode())


def test_docker_schema2_keeps_its_bytes_and_has_no_subject() -> None:
    image = build_image("app", oci=True)
    doc = json.loads(build_image("d", oci=False).manifest.raw)
    doc["subject"] = sc.subject_descriptor(image)  # not part of Docker's format: left alone
    raw = json.dumps(doc).encode()
    m = parse_manifest(raw)
    assert isinstance(m, Manifest) and m.media_type == mt.DOCKER_SCHEMA2
    assert m.subject is None and m.raw == raw and m.digest == Digest.of(raw)


def test_tag_names_of_the_tag_schema_and_cosign() -> None:
    d = Digest.of(b"x")
    assert tag_schema_tag(d) == f"sha256-{d.hex}"
    assert cosign_tags(d) == tuple(f"sha256-{d.hex}.{s}" for s in ("sig", "att", "sbom"))
    body = json.loads(referrers_index([]))
    assert body == {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": []}


def test_which_tags_are_cosign_or_tag_schema_tags() -> None:
    from reconciler.model.referrers import is_cosign_tag, is_tag_schema_tag

    d = Digest.of(b"x")
    assert all(is_cosign_tag(t) for t in cosign_tags(d)) and is_tag_schema_tag(tag_schema_tag(d))
    for other in ("latest", "sha256-abc.sig", f"sha256-{d.hex}.sig.old", f"md5-{d.hex}.sig", f"{tag_schema_tag(d)}.txt"):
        assert not is_cosign_tag(other), other
    assert not is_tag_schema_tag(f"sha256-{d.hex}.sig") and not is_tag_schema_tag("sha256-latest")
