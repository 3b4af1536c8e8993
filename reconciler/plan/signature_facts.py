"""What the ``verify:`` policy needs to know before the diff decides: the cosign
signatures the checked repositories could hold after the plan, and their payloads.

The diff is pure, so the refresh gathers, for every repository with ``verify:`` and every
repository it copies or pins from (``verify_scope``), the simple-signing layers of each
signature manifest (the referrers and the classic ``sha256-<hex>.sig`` tags' manifests the
store holds for them, and every manifest the refresh fetched) and the bytes of those
layers (the payloads: a few hundred bytes each). A payload the store lacks is one the
refresh fetches from the upstream it fetched the signature from (``fetch_payloads``): a
GET per new signature, verified by digest and kept in memory, never written (the plan
writes nothing). The diff then checks the state it predicts (plan/diff_verify.py).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from reconciler.desired.model import DesiredState
from reconciler.errors import ReconcilerError
from reconciler.model import Digest, Index, Manifest
from reconciler.model.referrers import is_cosign_tag
from reconciler.model.signatures import MAX_PAYLOAD, SIMPLE_SIGNING, SignatureLayer, signature_layers
from reconciler.ops.cascade import RefGraph
from reconciler.ops.transfer.interface import ContentSource
from reconciler.plan.observed import ObservedRepo, UpstreamTags
from reconciler.store.protocol import Store

log = logging.getLogger(__name__)


def verify_scope(desired: DesiredState, wanted: Iterable[str]) -> set[str]:
    """The planned repositories with ``verify:``, and those they copy or pin from (to a
    fixpoint): where a checked repository's signatures can come from."""
    repos = desired.repositories
    stack = [r for r in wanted if r in repos and repos[r].verify is not None]
    scope: set[str] = set()
    while stack:
        r = stack.pop()
        if r in scope or r not in repos:
            continue
        scope.add(r)
        spec = repos[r]
        stack += [c.from_repo for c in spec.copies] + [p.source_repo for p in spec.pins if p.source_repo]
    return scope


def _read(source: ContentSource, digest: Digest) -> bytes:
    return source.read_blob(digest, lambda chunks: b"".join(chunks))


def fetch_payloads(store: Store, source: ContentSource, manifests: Iterable[Manifest | Index]) -> dict[Digest, bytes]:
    """The payloads of the signatures among ``manifests`` (fetched upstream) that the store
    lacks, read from ``source``. One that cannot be read is left out: the check then
    says the signature's payload is not there."""
    out: dict[Digest, bytes] = {}
    for m in manifests:
        if not isinstance(m, Manifest) or not signature_layers(m):
            continue
        for layer in m.layers:
            if layer.media_type != SIMPLE_SIGNING or layer.digest in out or (layer.size or 0) > MAX_PAYLOAD \
                    or store.blob_has(layer.digest):
                continue
            try:
                out[layer.digest] = _read(source, layer.digest)
            except ReconcilerError as exc:
                log.info("the payload %s of signature %s could not be read: %s", layer.digest, m.digest, exc.message)
    return out


def signature_facts(store: Store, graph: RefGraph, repos: Mapping[str, ObservedRepo], scope: Iterable[str],
                    fetched: Mapping[Digest, Manifest | Index], fetched_payloads: Mapping[Digest, bytes],
                    ) -> tuple[dict[Digest, tuple[SignatureLayer, ...]], dict[Digest, bytes]]:
    """(signature manifest -> its simple-signing layers, payload blob -> bytes) for the
    repositories in ``scope`` and what the refresh ``fetched`` (see the module doc)."""
    signatures = {d: layers for d, m in fetched.items() if (layers := signature_layers(m))}
    candidates: set[Digest] = set()
    for repo in scope:
        if repo not in repos:
            continue
        state = repos[repo].state
        candidates |= {d for d in state.content.manifests if graph.subject(d) is not None}
        candidates |= {e.digest for t, e in state.tags.items() if t.endswith(".sig") and is_cosign_tag(t)}
    for d in sorted(candidates - fetched.keys(), key=str):
        try:
            layers = signature_layers(store.manifest_get(d))
        except ReconcilerError:
            continue  # unreadable: `store check` reports it; here it is simply no signature
        if layers:
            signatures[d] = layers
    payloads: dict[Digest, bytes] = {}
    for layers in signatures.values():
        for layer in layers:
            blob = layer.payload
            if blob in payloads:
                continue
            if blob in fetched_payloads:
                payloads[blob] = fetched_payloads[blob]
                continue
            try:
                if store.blob_has(blob) and store.blob_size(blob) <= MAX_PAYLOAD:
                    with store.blob_open(blob) as f:
                        payloads[blob] = f.read(MAX_PAYLOAD + 1)
            except ReconcilerError:
                continue
    return signatures, payloads


def classic_types(store: Store, desired: DesiredState, wanted: Iterable[str], repos: Mapping[str, ObservedRepo],
                  fetched: Mapping[Digest, Manifest | Index], upstreams: Mapping[str, UpstreamTags]) -> dict[Digest, str]:
    """What the manifests of cosign's classic tags are (the media type of their first
    layer, as discovery reads them) in the repositories that copies with
    ``referrers: {artifact_types: ...}`` copy from: only such a copy needs to know."""
    sources = {c.from_repo for r in wanted if r in desired.repositories
               for c in desired.repositories[r].copies if c.referrers.enabled and c.referrers.artifact_types}
    out: dict[Digest, str] = {}
    for source in sorted(sources):
        upstream = upstreams.get(source)
        for found in upstream.referrers.values() if upstream is not None else ():
            out.update({f.digest: f.artifact_type for f in found if f.tag is not None and f.artifact_type})
        state = repos[source].state if source in repos else None
        for name, entry in sorted(state.tags.items()) if state is not None else ():
            if not is_cosign_tag(name) or entry.digest in out:
                continue
            try:
                m = fetched.get(entry.digest) or store.manifest_get(entry.digest)
            except ReconcilerError:
                continue
            if isinstance(m, Manifest) and m.layers:
                out[entry.digest] = m.layers[0].media_type
    return out
