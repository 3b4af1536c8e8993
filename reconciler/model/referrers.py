"""Referrers: the manifests that point at another one through their ``subject`` (a
signature, an SBOM, an attestation of an image), as values.

A ``Referrer`` is one entry of the referrers list of a subject: what the OCI
distribution spec's referrers API answers for it (media type, digest, size,
``artifactType``, annotations), and what the store records per manifest with a subject
(``manifest_subjects``), so a repository version's referrers of a digest are one indexed
query. ``referrers_index`` builds the OCI image index the API answers with.

The tag names by which clients without the referrers API find the same things are here
too: the referrers tag schema (``sha256-<hex>``, an index of referrer descriptors) and
cosign's classic tags (``sha256-<hex>.sig``, ``.att``, ``.sbom``). docs/signatures.md
describes every layout.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from reconciler.model import mediatypes as mt
from reconciler.model.digest import Digest
from reconciler.model.manifest import Index, Manifest

#: cosign's classic tag suffixes: signature, attestation, SBOM
COSIGN_SUFFIXES = ("sig", "att", "sbom")


@dataclass(frozen=True)
class Referrer:
    """One referrer of a subject, as the referrers API lists it."""

    digest: Digest
    media_type: str
    size: int
    artifact_type: str | None = None
    annotations: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)

    @classmethod
    def of(cls, m: Manifest | Index) -> Referrer:
        return cls(m.digest, m.media_type, len(m.raw), m.referrer_type, dict(m.annotations))

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"mediaType": self.media_type, "digest": str(self.digest), "size": self.size}
        if self.artifact_type:
            out["artifactType"] = self.artifact_type
        if self.annotations:
            out["annotations"] = dict(self.annotations)
        return out


@dataclass(frozen=True)
class ReferrerPolicy:
    """Which referrers a sync takes (``referrers:`` in repos.yaml): none, all, or only
    those of some artifact types."""

    enabled: bool = True
    #: keep only these artifact types (empty: every type)
    artifact_types: tuple[str, ...] = ()

    def wants(self, artifact_type: str | None) -> bool:
        if not self.enabled:
            return False
        return not self.artifact_types or artifact_type in self.artifact_types


def referrers_index(referrers: Iterable[Referrer]) -> bytes:
    """The OCI image index listing ``referrers`` (the referrers API's answer body)."""
    doc = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": [r.to_json() for r in referrers]}
    return json.dumps(doc, separators=(",", ":")).encode()


def annotations_text(annotations: Mapping[str, str] | Iterable[tuple[str, str]]) -> str | None:
    """Annotations as the store records them: compact JSON, keys sorted; None when empty."""
    items = dict(annotations)
    return json.dumps(items, sort_keys=True, separators=(",", ":")) if items else None


def annotations_of(text: str | None) -> dict[str, str]:
    if not text:
        return {}
    loaded = json.loads(text)
    return {str(k): str(v) for k, v in loaded.items()} if isinstance(loaded, dict) else {}


def tag_schema_tag(digest: Digest) -> str:
    """The referrers tag schema's tag for ``digest``: ``<alg>-<hex>`` (distribution
    spec 1.1; also the prefix of cosign's classic tags)."""
    return f"{digest.algorithm}-{digest.hex}"


def is_cosign_tag(name: str) -> bool:
    """``sha256-<hex>.sig`` / ``.att`` / ``.sbom``: one of cosign's classic tags."""
    base, _, suffix = name.rpartition(".")
    return suffix in COSIGN_SUFFIXES and _is_digest_tag(base)


def is_tag_schema_tag(name: str) -> bool:
    """``sha256-<hex>``: a referrers tag-schema index's tag."""
    return _is_digest_tag(name)


def _is_digest_tag(name: str) -> bool:
    algorithm, _, hex_ = name.partition("-")
    return algorithm in ("sha256", "sha512") and len(hex_) in (64, 128) and all(c in "0123456789abcdef" for c in hex_)


def cosign_tags(digest: Digest) -> tuple[str, ...]:
    """cosign's classic tags of ``digest``: ``sha256-<hex>.sig``, ``.att``, ``.sbom``."""
    base = tag_schema_tag(digest)
    return tuple(f"{base}.{suffix}" for suffix in COSIGN_SUFFIXES)


class _Referrer(Protocol):
    @property
    def digest(self) -> Digest: ...


_R = TypeVar("_R", bound=_Referrer)


def breadth_first(roots: Iterable[Digest], direct: Callable[[Digest], Iterable[_R]]) -> list[_R]:
    """The referrers of ``roots`` and of theirs (``direct``: one subject's own), breadth
    first so each comes after its subject, each once."""
    level = list(roots)
    seen, out = set(level), []
    while level:
        nxt: list[Digest] = []
        for subject in level:
            for r in direct(subject):
                if r.digest not in seen:
                    seen.add(r.digest)
                    out.append(r)
                    nxt.append(r.digest)
        level = nxt
    return out
