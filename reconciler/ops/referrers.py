"""Finding what refers to a manifest upstream: signatures, SBOMs, attestations.

``discover(upstream, name, tags, roots, policy)`` returns, for each digest in ``roots``
and (recursively) for each referrer found, the referrers the upstream knows of. Three
ways, as docs/signatures.md describes them:

1. the referrers API (``GET /v2/<name>/referrers/<digest>``) when the upstream answers it.
   A 404 means the registry has none (one with the API answers 200 for every digest), so
   the first 404 stops asking it for the rest of the discovery; the registry client
   remembers it too (``RegistryClient.referrers_api``), so on a registry without the API
   a whole plan costs one such request, not one per repository nor per digest;
2. otherwise the referrers tag schema: the index tagged ``sha256-<hex>``, when the
   upstream's tag list (already read) names it: one GET;
3. cosign's classic tags ``sha256-<hex>.sig``, ``.att`` and ``.sbom``, when the tag list
   names them: one GET each (the manifest is needed anyway, and its layer says what it is).

Each referrer has an artifact type: the one the API or the tag-schema index lists (the
manifest's ``artifactType``, else its config's media type); for cosign's tags the media
type of the first layer, which is what cosign writes there (``...simplesigning.v1+json``
for a signature, ``application/vnd.dsse.envelope.v1+json`` for an attestation, the SBOM's
own type). ``ReferrerPolicy.artifact_types`` keeps only those types; referrers of the
referrers kept are looked up too (a signature of an SBOM), at most ``MAX_DEPTH`` levels
below a root. Only digests are gathered here; the content moves through the transfer
walk like any other manifest.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from reconciler.model import Digest, Index, Manifest
from reconciler.model.referrers import ReferrerPolicy, cosign_tags, tag_schema_tag
from reconciler.registry.protocol import UpstreamSource

#: levels of referrers of referrers followed below a root (a signature of an attestation
#: of an image is two); real chains are short, and a hostile upstream could make them long
MAX_DEPTH = 4


@dataclass(frozen=True)
class Found:
    """One referrer of ``subject``: its digest, what it is, and the cosign tag naming it
    (None for an OCI 1.1 referrer, found by its ``subject``)."""

    subject: Digest
    digest: Digest
    artifact_type: str | None
    tag: str | None = None


@dataclass
class Discovered:
    """Every referrer found, by subject, and the manifests read on the way (cosign's
    tags), which the walk need not fetch again; ``requests`` made for the discovery (as
    the upstream counted them: a referrers call the client answers from what it learnt
    earlier sends nothing)."""

    by_subject: dict[Digest, list[Found]] = field(default_factory=dict)
    manifests: dict[Digest, Manifest | Index] = field(default_factory=dict)
    api: bool | None = None
    requests: int = 0

    def all(self) -> list[Found]:
        return [f for found in self.by_subject.values() for f in found]


def discover(upstream: UpstreamSource, name: str, tags: Iterable[str], roots: Iterable[Digest],
             policy: ReferrerPolicy, *, api: bool | None = None) -> Discovered:
    """The referrers of ``roots`` and of theirs (see the module doc). ``tags``: the
    upstream's tag list; ``api``: what an earlier discovery learnt of the registry (None:
    not known, ask)."""
    out = Discovered(api=api)
    if not policy.enabled:
        return out
    before = upstream.stats.total
    tagset = set(tags)
    level = list(dict.fromkeys(roots))
    seen: set[Digest] = set(level)
    for _ in range(MAX_DEPTH + 1):
        next_level: list[Digest] = []
        for subject in level:
            kept = [f for f in _of(upstream, name, tagset, subject, out) if policy.wants(f.artifact_type)]
            if kept:
                out.by_subject[subject] = kept
            for f in kept:
                if f.digest not in seen:
                    seen.add(f.digest)
                    next_level.append(f.digest)
        if not next_level:
            break
        level = next_level
    out.requests = upstream.stats.total - before
    return out


def _of(upstream: UpstreamSource, name: str, tagset: set[str], subject: Digest, out: Discovered) -> list[Found]:
    found: list[Found] = []
    if out.api is not False:
        listed = upstream.referrers(name, subject)
        out.api = listed is not None
        found += [Found(subject, d.digest, d.artifact_type) for d in listed or ()]
    schema_tag = tag_schema_tag(subject)
    if out.api is False and schema_tag in tagset:
        index = upstream.manifest_get(name, schema_tag)
        if isinstance(index, Index):
            found += [Found(subject, d.digest, d.artifact_type) for d in index.manifests]
    for tag in cosign_tags(subject):
        if tag not in tagset:
            continue
        m = upstream.manifest_get(name, tag)
        out.manifests[m.digest] = m
        kind = m.layers[0].media_type if isinstance(m, Manifest) and m.layers else m.referrer_type
        found.append(Found(subject, m.digest, kind, tag))
    # one entry per digest: the API and a cosign tag may both name one
    unique: dict[Digest, Found] = {}
    for f in found:
        if f.digest not in unique or f.tag is not None:
            unique[f.digest] = f
    return list(unique.values())
