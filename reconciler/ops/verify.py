"""Checking cosign signatures of a repository version's images against public keys
(``reconciler verify``).

A tag passes when its image has a cosign signature that one of the keys verifies: for an
index, the index itself or else every child. Signatures are looked for where cosign puts
them (docs/signatures.md): the classic tag ``sha256-<hex>.sig`` in the same version, and
the version's OCI 1.1 referrers of the image. A signature is a layer of media type
``application/vnd.dev.cosign.simplesigning.v1+json`` whose annotation
``dev.cosignproject.cosign/signature`` holds the base64 signature over the layer's bytes
(the simple-signing payload). It counts only when

- the payload is JSON whose ``critical.image.docker-manifest-digest`` is the image's
  digest (a signature copied from another image never verifies), and
- the signature verifies over the payload's exact bytes with one of the keys: ECDSA
  (P-256 with SHA-256, P-384 with SHA-384, P-521 with SHA-512), RSA (PKCS#1 v1.5, or PSS,
  with SHA-256) or Ed25519, given as PEM public keys (what ``cosign generate-key-pair``
  writes as ``cosign.pub``).

Keyless signatures (a Fulcio certificate and a Rekor entry instead of a key) are not
verified: only keys given here count.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa

from reconciler.errors import InvalidInput, ReconcilerError
from reconciler.model import Digest, Index, Manifest
from reconciler.model.referrers import is_cosign_tag, is_tag_schema_tag, tag_schema_tag
from reconciler.model.repository import RepositoryVersion
from reconciler.store.roles.read import ReadView

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
#: payloads larger than this are not read (cosign's are a few hundred bytes)
MAX_PAYLOAD = 1 << 20

PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class Key:
    name: str
    key: PublicKey


@dataclass(frozen=True)
class Verdict:
    """One tag: whether it passed, and why (``verified by keys/release.pub`` or the reason
    it did not)."""

    tag: str
    digest: Digest | None
    ok: bool
    reason: str

    def to_json(self) -> dict[str, object]:
        return {"tag": self.tag, "digest": str(self.digest) if self.digest else None, "ok": self.ok,
                "reason": self.reason}


def load_keys(paths: Iterable[str | Path]) -> list[Key]:
    """PEM public keys; ``InvalidInput`` naming the file for anything else."""
    keys = []
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise InvalidInput(f"cannot read the key {path}: {exc.strerror or exc}",
                               hint="give the public key file cosign wrote (cosign.pub)") from exc
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise InvalidInput(f"{path} is not a PEM public key: {exc}",
                               hint="give the public key (cosign.pub), not the private key or a certificate") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
            raise InvalidInput(f"{path}: {type(key).__name__} keys are not supported",
                               hint="use an ECDSA, RSA or Ed25519 public key")
        keys.append(Key(str(path), key))
    if not keys:
        raise InvalidInput("no key given", hint="pass --key FILE (a cosign public key), once per key")
    return keys


def is_signature_tag(name: str) -> bool:
    """Tags that carry signatures, attestations or referrer indexes rather than images."""
    return is_cosign_tag(name) or is_tag_schema_tag(name)


def verify_tags(store: ReadView, version: RepositoryVersion, keys: Sequence[Key],
                tags: Sequence[str] | None = None) -> list[Verdict]:
    """A verdict per tag (default: every tag that is not itself a signature's)."""
    names = list(tags) if tags else sorted(t for t in version.tags if not is_signature_tag(t))
    out = []
    for tag in names:
        entry = version.tags.get(tag)
        if entry is None:
            out.append(Verdict(tag, None, False, f"no tag {tag} in version {version.number}"))
            continue
        ok, reason = _verify_image(store, version, entry.digest, keys)
        out.append(Verdict(tag, entry.digest, ok, reason))
    return out


def _verify_image(store: ReadView, version: RepositoryVersion, digest: Digest,
                  keys: Sequence[Key]) -> tuple[bool, str]:
    ok, reason = _verify_digest(store, version, digest, keys)
    if ok:
        return ok, reason
    m = store.manifest_get(digest)
    if not isinstance(m, Index) or not m.children():
        return ok, reason
    # an unsigned index passes when every child is signed
    for child in m.children():
        if child in version.absent:
            continue  # a platform not mirrored: nothing to check
        child_ok, child_reason = _verify_digest(store, version, child, keys)
        if not child_ok:
            return False, f"{reason}, and its child {child} has none either: {child_reason}"
    return True, "every child verified"


def _verify_digest(store: ReadView, version: RepositoryVersion, digest: Digest,
                   keys: Sequence[Key]) -> tuple[bool, str]:
    candidates: list[Digest] = []
    classic = version.tags.get(f"{tag_schema_tag(digest)}.sig")
    if classic is not None:
        candidates.append(classic.digest)
    candidates += [r.digest for r in store.version_referrers(version.repo_id, version.number, digest)]
    names = ", ".join(k.name for k in keys)
    problems: list[str] = []
    seen = False
    for sig_digest in dict.fromkeys(candidates):
        m = store.manifest_get(sig_digest)
        if not isinstance(m, Manifest):
            continue
        for layer in m.layers:
            encoded = layer.annotations.get(SIGNATURE_ANNOTATION)
            if layer.media_type != SIMPLE_SIGNING or not encoded:
                continue
            seen = True
            by, problem = _check(store, version, digest, layer.digest, encoded, keys)
            if by is not None:
                return True, f"verified by {by} (signature {sig_digest})"
            problems.append(problem)
    if not seen:
        return False, f"no signature verified by {names} (the image has no cosign signature)"
    return False, f"no signature verified by {names} ({'; '.join(dict.fromkeys(problems))})"


def _payload(store: ReadView, version: RepositoryVersion, blob: Digest) -> bytes | None:
    if blob not in version.content.blobs:
        return None
    try:
        if store.blob_size(blob) > MAX_PAYLOAD:
            return None
        with store.blob_open(blob) as f:
            return f.read(MAX_PAYLOAD + 1)
    except ReconcilerError:
        return None


def _check(store: ReadView, version: RepositoryVersion, digest: Digest, blob: Digest, encoded: str,
           keys: Sequence[Key]) -> tuple[str | None, str]:
    """(the key that verifies the signature for ``digest``, "") or (None, what is wrong)."""
    payload = _payload(store, version, blob)
    if payload is None:
        return None, "a signature's payload is not in the repository"
    try:
        doc = json.loads(payload)
        named = doc["critical"]["image"]["docker-manifest-digest"]
    except (ValueError, KeyError, TypeError):
        return None, "a signature's payload is not a cosign simple-signing payload"
    if named != str(digest):
        return None, f"a signature's payload is for {named}, not this image"
    try:
        signature = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        return None, "a signature is not valid base64"
    for k in keys:
        if _verifies(k.key, signature, payload):
            return k.name, ""
    return None, "a signature does not verify with the key (another key, or the payload was altered)"


def _verifies(key: PublicKey, signature: bytes, payload: bytes) -> bool:
    try:
        if isinstance(key, ec.EllipticCurvePublicKey):
            digest = {256: hashes.SHA256(), 384: hashes.SHA384(), 521: hashes.SHA512()}.get(key.curve.key_size,
                                                                                            hashes.SHA256())
            key.verify(signature, payload, ec.ECDSA(digest))
        elif isinstance(key, rsa.RSAPublicKey):
            try:
                key.verify(signature, payload, padding.PKCS1v15(), hashes.SHA256())
            except InvalidSignature:
                key.verify(signature, payload, padding.PSS(padding.MGF1(hashes.SHA256()), padding.PSS.AUTO),
                           hashes.SHA256())
        else:
            key.verify(signature, payload)
    except InvalidSignature:
        return False
    return True
