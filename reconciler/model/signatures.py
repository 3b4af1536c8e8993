"""cosign signatures checked against public keys, over any view of a repository (pure).

The one verification both ``reconciler verify`` (a stored repository version) and the
``verify:`` policy of repos.yaml (the state a plan predicts for a repository) run. A
``SignatureView`` answers the few questions the check asks of a repository: the
manifest its classic ``sha256-<hex>.sig`` tag names, the referrers of a digest, the
simple-signing layers of a signature manifest, a payload's bytes, an index's children.

An image passes when one of its signatures counts (docs/signatures.md): a layer of media
type ``application/vnd.dev.cosign.simplesigning.v1+json`` whose annotation
``dev.cosignproject.cosign/signature`` holds the base64 signature over the layer's bytes
(the simple-signing payload), where

- the payload is JSON whose ``critical.image.docker-manifest-digest`` is the image's
  digest (a signature copied from another image never verifies), and
- the signature verifies over the payload's exact bytes with one of the keys: ECDSA
  (P-256 with SHA-256, P-384 with SHA-384, P-521 with SHA-512), RSA (PKCS#1 v1.5, or PSS,
  with SHA-256) or Ed25519, given as PEM public keys (``cosign generate-key-pair``'s
  ``cosign.pub``).

An index passes when it is signed itself, or when every child the view holds is. The
view decides what is "in the repository": a signature or payload it does not hold never
counts. Keyless signatures (a Fulcio certificate and a Rekor entry) are not verified.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from reconciler.errors import InvalidInput
from reconciler.model.digest import Digest
from reconciler.model.manifest import Index, Manifest

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

# cryptography is imported where a key is read or a signature checked (``parse_key``,
# ``_verifies``), not here: every plan and validate imports this module for its value types,
# and cryptography (with bcrypt, which its serialization pulls in) was 8% of validate's
# instructions and 9 MB of its memory (bench/README.md, "Start-up and imports").

SIMPLE_SIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
SIGNATURE_ANNOTATION = "dev.cosignproject.cosign/signature"
#: payloads larger than this are not read (cosign's are a few hundred bytes)
MAX_PAYLOAD = 1 << 20

if TYPE_CHECKING:
    PublicKey = ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey


@dataclass(frozen=True)
class Key:
    """A public key, the name it is shown by (the file as the user wrote it) and the
    sha256 of its DER form (its identity: a drift fingerprint changes with the key)."""

    name: str
    sha256: str
    _key: PublicKey = field(compare=False, repr=False)

    @property
    def key(self) -> PublicKey:
        return self._key


@dataclass(frozen=True)
class SignatureLayer:
    """One simple-signing layer of a signature manifest: the payload blob and the base64
    signature over it."""

    payload: Digest
    signature: str


def parse_key(data: bytes, name: str) -> Key:
    """A PEM public key of a supported type; ``InvalidInput`` naming ``name`` otherwise."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as exc:
        raise InvalidInput(f"{name} is not a PEM public key",
                           hint="give the public key (cosign.pub), not the private key or a certificate") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey | rsa.RSAPublicKey | ed25519.Ed25519PublicKey):
        raise InvalidInput(f"{name}: {type(key).__name__} keys are not supported",
                           hint="use an ECDSA, RSA or Ed25519 public key")
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return Key(name, hashlib.sha256(der).hexdigest(), key)


def signature_layers(m: Manifest | Index) -> tuple[SignatureLayer, ...]:
    """The simple-signing layers of ``m`` that carry a signature (none for an index)."""
    if not isinstance(m, Manifest):
        return ()
    return tuple(SignatureLayer(layer.digest, encoded) for layer in m.layers
                 if layer.media_type == SIMPLE_SIGNING and (encoded := layer.annotations.get(SIGNATURE_ANNOTATION)))


class SignatureView(Protocol):
    """What the check reads of a repository (a stored version, or a planned state)."""

    def classic_signature(self, digest: Digest) -> Digest | None:
        """The manifest the repository's tag ``sha256-<hex>.sig`` of ``digest`` names."""
        ...
    def referrers(self, digest: Digest) -> Sequence[Digest]:
        """The repository's manifests and indexes whose ``subject`` is ``digest``."""
        ...
    def signatures_in(self, digest: Digest) -> Sequence[SignatureLayer]:
        """The simple-signing layers of the repository's manifest ``digest`` (none when
        it holds no such manifest)."""
        ...
    def payload(self, blob: Digest) -> bytes | None:
        """The bytes of the repository's blob ``blob`` (None: not held, or too large)."""
        ...
    def children(self, digest: Digest) -> Sequence[Digest]:
        """The children of the index ``digest`` the repository holds (none for a manifest)."""
        ...


def verify_image(view: SignatureView, digest: Digest, keys: Sequence[Key]) -> tuple[bool, str]:
    """(passed, why): ``verified by KEY (signature D)``, ``every child verified``, or the reason
    it failed (``no signature verified by KEYS (...)``)."""
    ok, reason = _verify_digest(view, digest, keys)
    if ok:
        return ok, reason
    children = view.children(digest)
    if not children:
        return ok, reason
    # an unsigned index passes when every child is signed
    for child in children:
        child_ok, child_reason = _verify_digest(view, child, keys)
        if not child_ok:
            return False, f"{reason}, and its child {child} has none either: {child_reason}"
    return True, "every child verified"


def _verify_digest(view: SignatureView, digest: Digest, keys: Sequence[Key]) -> tuple[bool, str]:
    candidates: list[Digest] = []
    classic = view.classic_signature(digest)
    if classic is not None:
        candidates.append(classic)
    candidates += view.referrers(digest)
    names = ", ".join(k.name for k in keys)
    problems: list[str] = []
    seen = False
    for sig_digest in dict.fromkeys(candidates):
        for layer in view.signatures_in(sig_digest):
            seen = True
            by, problem = _check(view, digest, layer, keys)
            if by is not None:
                return True, f"verified by {by} (signature {sig_digest})"
            problems.append(problem)
    if not seen:
        return False, f"no signature verified by {names} (the image has no cosign signature)"
    return False, f"no signature verified by {names} ({'; '.join(dict.fromkeys(problems))})"


def _check(view: SignatureView, digest: Digest, layer: SignatureLayer, keys: Sequence[Key]) -> tuple[str | None, str]:
    """(the key that verifies the signature for ``digest``, "") or (None, what is wrong)."""
    payload = view.payload(layer.payload)
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
        signature = base64.b64decode(layer.signature, validate=True)
    except (binascii.Error, ValueError):
        return None, "a signature is not valid base64"
    for k in keys:
        if _verifies(k.key, signature, payload):
            return k.name, ""
    return None, "a signature does not verify with the key (another key, or the payload was altered)"


def _verifies(key: PublicKey, signature: bytes, payload: bytes) -> bool:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa

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
