"""``reconciler bundle verify``: a bundle checked completely on the far side of the gap,
before anything is imported: the checks every read makes (``reader.BundleFile``), plus
every carried file hashed against its name and the bundle's listing complete."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from reconciler.bundle.reader import LIMITS, BundleFile, blob_member, open_bundles
from reconciler.errors import InvalidInput
from reconciler.model import Digest, DigestHasher, parse_manifest


@dataclass(frozen=True)
class VerifyReport:
    path: str
    digest: str
    created: str
    base: str | None
    repositories: int
    tags: int
    checked: int
    problems: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {**self.__dict__, "ok": not self.problems}


def _intact(bundle: BundleFile, name: str, digest: Digest, media_type: str | None) -> bool:
    """The member's bytes give ``digest``: a blob's hash, or a manifest's digest as the
    model computes it (a signed schema1 manifest's digest leaves out its signatures)."""
    if media_type is not None:
        try:
            return parse_manifest(bundle.read(name, limit=LIMITS.json_bytes), media_type).digest == digest
        except InvalidInput:
            return False
    h = DigestHasher(digest.algorithm)
    for chunk in bundle.chunks(name):
        h.update(chunk)
    return h.digest() == digest


def verify_bundle(bundle: BundleFile) -> VerifyReport:
    m = bundle.manifest
    problems: list[str] = []
    listed = m.all_content()
    media_types = {d: t for r in m.repositories.values() for d, t in r.manifests.items()}
    checked = 0
    for digest in sorted(listed, key=str):
        name = blob_member(digest)
        if not bundle.has(name):
            if m.base_digest is None:  # a full bundle carries everything it lists
                problems.append(f"{digest} is listed but not carried")
            continue
        checked += 1
        if not _intact(bundle, name, digest, media_types.get(digest)):
            problems.append(f"{name} does not hash to its digest")
    for rid, repo in m.repositories.items():
        problems += [f"repository {rid}: tag {t} points at {d}, which the repository does not list"
                     for t, d in sorted(repo.tags.items()) if d not in repo.manifests]
    return VerifyReport(str(bundle.path), str(bundle.digest), m.created, str(m.base_digest) if m.base_digest else None,
                        len(m.repositories), sum(len(r.tags) for r in m.repositories.values()), checked, problems)


def verify_bundles(path: str | Path) -> list[VerifyReport]:
    """Every bundle ``path`` names (a file, an extracted bundle, a folder of bundles)."""
    return [verify_bundle(b) for b in open_bundles(Path(path))]
