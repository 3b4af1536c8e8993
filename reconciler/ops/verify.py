"""Checking cosign signatures of a repository version's images against public keys
(``reconciler verify``).

The check itself is ``model.signatures.verify_image`` (the one the ``verify:`` policy of
repos.yaml runs on the state a plan predicts); here it reads a stored version: its
classic tag ``sha256-<hex>.sig``, its OCI 1.1 referrers of the image (the store's subject
index), the signature manifests and payload blobs that version holds. A tag passes when
its image has a signature one of the keys verifies: for an index, the index itself or
else every child (a platform the version left out is not checked).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import InvalidInput, ReconcilerError
from reconciler.model import Digest, Index
from reconciler.model.referrers import is_cosign_tag, is_tag_schema_tag, tag_schema_tag
from reconciler.model.repository import RepositoryVersion
from reconciler.model.signatures import (
    MAX_PAYLOAD,
    Key,
    SignatureLayer,
    parse_key,
    signature_layers,
    verify_image,
)
from reconciler.store.roles.read import ReadView

__all__ = ["Key", "Verdict", "is_signature_tag", "load_keys", "verify_tags"]


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
        keys.append(parse_key(data, str(path)))
    if not keys:
        raise InvalidInput("no key given", hint="pass --key FILE (a cosign public key), once per key")
    return keys


def is_signature_tag(name: str) -> bool:
    """Tags that carry signatures, attestations or referrer indexes rather than images."""
    return is_cosign_tag(name) or is_tag_schema_tag(name)


class StoredVersion:
    """A ``SignatureView`` of one stored repository version."""

    def __init__(self, store: ReadView, version: RepositoryVersion) -> None:
        self.store, self.version = store, version

    def classic_signature(self, digest: Digest) -> Digest | None:
        entry = self.version.tags.get(f"{tag_schema_tag(digest)}.sig")
        return entry.digest if entry is not None else None

    def referrers(self, digest: Digest) -> list[Digest]:
        v = self.version
        return [r.digest for r in self.store.version_referrers(v.repo_id, v.number, digest)]

    def signatures_in(self, digest: Digest) -> tuple[SignatureLayer, ...]:
        if digest not in self.version.content.manifests:
            return ()
        try:
            return signature_layers(self.store.manifest_get(digest))
        except ReconcilerError:
            return ()

    def payload(self, blob: Digest) -> bytes | None:
        if blob not in self.version.content.blobs:
            return None
        try:
            if self.store.blob_size(blob) > MAX_PAYLOAD:
                return None
            with self.store.blob_open(blob) as f:
                return f.read(MAX_PAYLOAD + 1)
        except ReconcilerError:
            return None

    def children(self, digest: Digest) -> list[Digest]:
        if digest not in self.version.content.indexes:
            return []
        m = self.store.manifest_get(digest)
        return [c for c in m.children() if c not in self.version.absent] if isinstance(m, Index) else []


def verify_tags(store: ReadView, version: RepositoryVersion, keys: Sequence[Key],
                tags: Sequence[str] | None = None) -> list[Verdict]:
    """A verdict per tag (default: every tag that is not itself a signature's)."""
    names = list(tags) if tags else sorted(t for t in version.tags if not is_signature_tag(t))
    view = StoredVersion(store, version)
    out = []
    for tag in names:
        entry = version.tags.get(tag)
        if entry is None:
            out.append(Verdict(tag, None, False, f"no tag {tag} in version {version.number}"))
            continue
        ok, reason = verify_image(view, entry.digest, keys)
        out.append(Verdict(tag, entry.digest, ok, reason))
    return out
