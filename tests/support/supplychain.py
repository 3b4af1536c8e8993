"""Signatures, SBOMs and attestations for the tests, in the byte layouts cosign and OCI 1.1
clients write (docs/signatures.md describes each layout).

- ``cosign_signature(subject, key)``: cosign's classic signature image, pushed under the
  tag ``sha256-<hex>.sig``: an OCI image manifest whose one layer is the simple-signing
  payload (``application/vnd.dev.cosign.simplesigning.v1+json``) with the base64 ECDSA
  signature in the layer annotation ``dev.cosignproject.cosign/signature``; its config is
  an image config whose ``rootfs.diff_ids`` names the payload.
- ``oci_referrer(subject, artifact_type, data, ...)``: an OCI 1.1 artifact manifest: the
  empty config (``application/vnd.oci.empty.v1+json``, the two bytes ``{}``),
  ``artifactType``, one layer, and ``subject`` pointing at the image.
- ``tag_schema_index(referrers)``: the index an OCI 1.1 client keeps under the tag
  ``sha256-<hex>`` on a registry without the referrers API (the referrers tag schema).

Same arguments, same bytes (ECDSA signatures are randomised: pass ``signature=`` bytes
for a fixed one).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from reconciler.model import Digest, Index, Manifest, parse_manifest
from reconciler.model import mediatypes as mt
from tests.support.imagegen import Image, IndexImage, ManifestImage, sha

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
COSIGN_SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"
EMPTY_BYTES = b"{}"
SPDX = "application/spdx+json"
SIGSTORE_BUNDLE = "application/vnd.dev.sigstore.bundle.v0.3+json"
IN_TOTO = "application/vnd.in-toto+json"
DSSE = "application/vnd.dsse.envelope.v1+json"


def new_key() -> ec.EllipticCurvePrivateKey:
    """An ECDSA P-256 key, what ``cosign generate-key-pair`` makes."""
    return ec.generate_private_key(ec.SECP256R1())


PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey | ed25519.Ed25519PrivateKey
COSIGN_REFERRER_SIG = "application/vnd.dev.cosign.artifact.sig.v1+json"


def sign(key: PrivateKey, payload: bytes) -> bytes:
    """What cosign signs with each kind of key: ECDSA with SHA-256, RSA PKCS#1 v1.5 with
    SHA-256, Ed25519 over the bytes."""
    if isinstance(key, ec.EllipticCurvePrivateKey):
        return key.sign(payload, ec.ECDSA(hashes.SHA256()))
    if isinstance(key, rsa.RSAPrivateKey):
        return key.sign(payload, padding.PKCS1v15(), hashes.SHA256())
    return key.sign(payload)


def public_pem(key: PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def tag_schema_tag(digest: Digest | str) -> str:
    """``sha256:abc...`` -> ``sha256-abc...`` (the referrers tag schema, and cosign's prefix)."""
    return str(digest).replace(":", "-", 1)


def cosign_tag(digest: Digest | str, suffix: str = "sig") -> str:
    """cosign's classic tag: ``sha256-<hex>.sig`` (``.att``, ``.sbom``)."""
    return f"{tag_schema_tag(digest)}.{suffix}"


def simple_signing_payload(subject: Digest | str, docker_reference: str) -> bytes:
    """The payload cosign signs: JSON, compact, in cosign's key order."""
    doc = {"critical": {"identity": {"docker-reference": docker_reference},
                        "image": {"docker-manifest-digest": str(subject)},
                        "type": "cosign container image signature"},
           "optional": None}
    return json.dumps(doc, separators=(",", ":")).encode()


def _manifest(doc: Mapping[str, object]) -> Manifest:
    m = parse_manifest(json.dumps(doc, separators=(",", ":")).encode())
    assert isinstance(m, Manifest)
    return m


def _desc(media_type: str, data: bytes, annotations: Mapping[str, str] | None = None) -> dict[str, object]:
    out: dict[str, object] = {"mediaType": media_type, "size": len(data), "digest": sha(data)}
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def subject_descriptor(subject: Image) -> dict[str, object]:
    m = subject.manifest
    return {"mediaType": m.media_type, "size": len(m.raw), "digest": str(m.digest)}


def cosign_signature(subject: Image | Digest, key: PrivateKey | None = None, *,
                     docker_reference: str = "registry.example/app", payload: bytes | None = None,
                     signature: bytes | None = None, layer_type: str = SIMPLE_SIGNING) -> ManifestImage:
    """cosign's classic signature image for ``subject`` (push it under ``cosign_tag``).

    ``payload`` overrides the simple-signing payload (a payload for another digest),
    ``signature`` the base64-decoded signature bytes (a tampered or foreign one)."""
    digest = subject.digest if isinstance(subject, Image) else subject
    body = payload if payload is not None else simple_signing_payload(digest, docker_reference)
    if signature is None:
        signature = sign(key or new_key(), body)
    layer = _desc(layer_type, body, {COSIGN_SIGNATURE_ANNOTATION: base64.b64encode(signature).decode()})
    config = json.dumps({"architecture": "", "created": "0001-01-01T00:00:00Z",
                         "history": [{"created": "0001-01-01T00:00:00Z"}], "os": "",
                         "rootfs": {"type": "layers", "diff_ids": [sha(body)]}, "config": {}},
                        separators=(",", ":")).encode()
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST,
           "config": _desc(mt.OCI_CONFIG, config), "layers": [layer]}
    return ManifestImage(_manifest(doc), {sha(config): config, sha(body): body})


def oci_referrer(subject: Image, artifact_type: str, data: bytes, *, layer_type: str | None = None,
                 annotations: Mapping[str, str] | None = None, empty_config: bool = True,
                 config_type: str | None = None) -> ManifestImage:
    """An OCI 1.1 artifact that refers to ``subject`` (what ``oras attach`` or ``cosign
    attest --registry-referrers-mode=oci-1-1`` push). ``empty_config=False`` with
    ``config_type``: the older form, a config blob of the artifact's own type and no
    ``artifactType``."""
    blobs = {sha(data): data}
    doc: dict[str, object] = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST}
    if empty_config:
        doc["artifactType"] = artifact_type
        doc["config"] = _desc(EMPTY_CONFIG, EMPTY_BYTES)
        blobs[sha(EMPTY_BYTES)] = EMPTY_BYTES
    else:
        cfg = b'{"kind":"' + artifact_type.encode() + b'"}'
        doc["config"] = _desc(config_type or artifact_type, cfg)
        blobs[sha(cfg)] = cfg
    doc["layers"] = [_desc(layer_type or artifact_type, data)]
    doc["subject"] = subject_descriptor(subject)
    if annotations:
        doc["annotations"] = dict(annotations)
    return ManifestImage(_manifest(doc), blobs)


def referrer_descriptor(referrer: Image) -> dict[str, object]:
    """The descriptor of ``referrer`` as the referrers API and the tag schema list it."""
    m = referrer.manifest
    doc = json.loads(m.raw)
    out: dict[str, object] = {"mediaType": m.media_type, "digest": str(m.digest), "size": len(m.raw)}
    art = doc.get("artifactType") or (doc.get("config") or {}).get("mediaType")
    if art:
        out["artifactType"] = art
    if doc.get("annotations"):
        out["annotations"] = doc["annotations"]
    return out


def tag_schema_index(referrers: list[Image]) -> IndexImage:
    """The index an OCI 1.1 client maintains under ``sha256-<hex>`` of the subject when the
    registry has no referrers API: the referrers' descriptors (they are not children
    to fetch through this index: they are pushed by digest on their own)."""
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [referrer_descriptor(r) for r in referrers]}
    idx = parse_manifest(json.dumps(doc, separators=(",", ":")).encode())
    assert isinstance(idx, Index)
    return IndexImage(idx, {}, [])


def cosign_referrer_signature(subject: Image, key: PrivateKey, *, docker_reference: str = "registry.example/app",
                              payload: bytes | None = None) -> ManifestImage:
    """cosign's signature in its OCI 1.1 form (``--registry-referrers-mode=oci-1-1``): the
    same simple-signing layer and annotation, on an artifact manifest with the empty
    config and a ``subject`` instead of a ``.sig`` tag."""
    body = payload if payload is not None else simple_signing_payload(subject.digest, docker_reference)
    layer = _desc(SIMPLE_SIGNING, body, {COSIGN_SIGNATURE_ANNOTATION: base64.b64encode(sign(key, body)).decode()})
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_MANIFEST, "artifactType": COSIGN_REFERRER_SIG,
           "config": _desc(EMPTY_CONFIG, EMPTY_BYTES), "layers": [layer], "subject": subject_descriptor(subject)}
    return ManifestImage(_manifest(doc), {sha(body): body, sha(EMPTY_BYTES): EMPTY_BYTES})
