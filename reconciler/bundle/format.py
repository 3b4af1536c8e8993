"""The bundle manifest, ``bundle.json``: what a bundle holds, from where, against what.

A bundle is a tar (uncompressed: blobs are compressed already, and the reader seeks to
each member) holding an OCI image layout plus two files of its own::

    bundle.json      this manifest (below)
    bundle.sha256    "sha256:<hex>  bundle.json": the bundle's digest, which names it
    oci-layout       {"imageLayoutVersion": "1.0.0"}
    index.json       an OCI index: one descriptor per repository and tag (annotations
                     io.reconciler.repository, io.reconciler.tag, and
                     org.opencontainers.image.ref.name "<repository>:<tag>")
    blobs/<alg>/<hex>  every blob, manifest and index the bundle carries, exact bytes

``bundle.json``::

    {"format": "reconciler-bundle", "format_version": 1, "created": "<UTC ISO 8601>",
     "source": {"store": "<location>", "generation": N},
     "base": null | {"digest": "sha256:...", "created": "..."},
     "index": "sha256:<digest of index.json>",
     "carried": {"blobs": N, "manifests": N, "bytes": N},
     "repositories": {
       "<id>": {"version": N, "publish_name": "team/web" | null, "protected": false,
                "tags": {"<tag>": "sha256:..."},
                "manifests": {"sha256:...": "<media type>"},   # manifests and indexes
                "blobs": ["sha256:..."],
                "referrers": {}}}}

Each repository lists its *whole* content (the version exported), whether this bundle
carries the bytes or its base did: a delta (``base`` set) carries only what the base
chain did not, so the listing tells a reader what it needs from an earlier bundle and
lets it say so. ``referrers`` is reserved (subject digest -> referrer manifest digests)
for when the content model knows referrers; readers of version 1 ignore it. New optional
keys may appear in version 1; a change a version 1 reader would misread bumps
``format_version``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import InvalidInput
from reconciler.model import Digest, jsonsafe

FORMAT = "reconciler-bundle"
FORMAT_VERSION = 1
MANIFEST = "bundle.json"
CHECKSUM = "bundle.sha256"
REPOSITORY_ANNOTATION = "io.reconciler.repository"
TAG_ANNOTATION = "io.reconciler.tag"


@dataclass(frozen=True)
class RepoEntry:
    """One repository in a bundle: its tags and its whole content, by digest."""

    id: str
    version: int
    tags: Mapping[str, Digest]
    manifests: Mapping[Digest, str]  # digest -> media type (manifests and indexes)
    blobs: frozenset[Digest]
    publish_name: str | None = None
    protected: bool = False

    def holds(self, digest: Digest) -> bool:
        return digest in self.manifests or digest in self.blobs

    def to_json(self) -> dict[str, Any]:
        return {"version": self.version, "publish_name": self.publish_name, "protected": self.protected,
                "tags": {t: str(d) for t, d in sorted(self.tags.items())},
                "manifests": {str(d): m for d, m in sorted(self.manifests.items(), key=lambda x: str(x[0]))},
                "blobs": sorted(str(d) for d in self.blobs), "referrers": {}}


@dataclass(frozen=True)
class BundleManifest:
    created: str
    source_store: str
    source_generation: int
    index_digest: Digest
    repositories: Mapping[str, RepoEntry]
    base_digest: Digest | None = None
    base_created: str | None = None
    carried: Mapping[str, int] = field(default_factory=dict)

    def all_content(self) -> set[Digest]:
        """Every digest any repository lists (carried here or by the base chain)."""
        out: set[Digest] = set()
        for repo in self.repositories.values():
            out |= set(repo.manifests) | repo.blobs
        return out

    def repository(self, name: str) -> RepoEntry | None:
        """By repository id, else by publish name."""
        if name in self.repositories:
            return self.repositories[name]
        return next((r for r in self.repositories.values() if r.publish_name == name), None)

    def to_json(self) -> dict[str, Any]:
        base = {"digest": str(self.base_digest), "created": self.base_created} if self.base_digest else None
        return {"format": FORMAT, "format_version": FORMAT_VERSION, "created": self.created,
                "source": {"store": self.source_store, "generation": self.source_generation},
                "base": base, "index": str(self.index_digest), "carried": dict(self.carried),
                "repositories": {r: e.to_json() for r, e in sorted(self.repositories.items())}}

    def dumps(self) -> bytes:
        return _dumps(self.to_json())


def _dumps(doc: Mapping[str, Any]) -> bytes:
    import json

    return json.dumps(doc, indent=1, sort_keys=True).encode() + b"\n"


def checksum_line(manifest_bytes: bytes) -> bytes:
    return f"sha256:{hashlib.sha256(manifest_bytes).hexdigest()}  {MANIFEST}\n".encode()


def parse(data: bytes, checksum: bytes | None, *, where: str) -> tuple[BundleManifest, Digest]:
    """``bundle.json`` checked against ``bundle.sha256``; (manifest, the bundle's digest)."""
    digest = Digest.of(data)
    if checksum is None or checksum.split()[:1] != [str(digest).encode()]:
        raise InvalidInput(f"{where}: {MANIFEST} does not match {CHECKSUM} (the bundle is damaged or was altered)",
                           hint="copy the bundle again from the connected side and compare its sha256sum")
    try:
        doc = jsonsafe.loads(data)
    except ValueError as exc:
        raise InvalidInput(f"{where}: {MANIFEST} is not valid JSON: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise InvalidInput(f"{where}: not a reconciler bundle ({MANIFEST} has no format {FORMAT!r})")
    if doc.get("format_version") != FORMAT_VERSION:
        raise InvalidInput(f"{where}: bundle format version {doc.get('format_version')}, this reconciler reads "
                           f"{FORMAT_VERSION}", hint="read it with the reconciler version that wrote it, or newer")
    try:
        repos = {rid: _repo(rid, entry) for rid, entry in doc["repositories"].items()}
        base = doc.get("base")
        return BundleManifest(
            created=str(doc["created"]), source_store=str(doc["source"]["store"]),
            source_generation=int(doc["source"]["generation"]), index_digest=Digest.parse(doc["index"]),
            repositories=repos, base_digest=Digest.parse(base["digest"]) if base else None,
            base_created=str(base["created"]) if base else None,
            carried={k: int(v) for k, v in doc.get("carried", {}).items()}), digest
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise InvalidInput(f"{where}: {MANIFEST} is malformed: {exc!r}") from exc


def _repo(rid: str, entry: dict[str, Any]) -> RepoEntry:
    return RepoEntry(
        id=rid, version=int(entry["version"]),
        tags={str(t): Digest.parse(d) for t, d in entry["tags"].items()},
        manifests={Digest.parse(d): str(m) for d, m in entry["manifests"].items()},
        blobs=frozenset(Digest.parse(d) for d in entry["blobs"]),
        publish_name=entry.get("publish_name"), protected=bool(entry.get("protected", False)))
