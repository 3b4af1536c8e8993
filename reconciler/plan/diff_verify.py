"""The ``verify:`` policy in the diff (pure): every tag the repository would hold after
the plan must point to an image with a cosign signature one of the policy's keys
verifies (``model.signatures.verify_image``, the check ``reconciler verify`` runs).

The check reads the *predicted* state: the classic ``sha256-<hex>.sig`` tags it will
have, the referrers (by their recorded ``subject``) it will hold, and the signature
layers and payloads the refresh gathered (plan/signature_facts.py). A signature the
repository will not hold never counts, nor does one whose subject is not in it (it is
only found as a referrer of a digest the repository holds). A failing tag refuses the
whole repository (``Refused``): nothing of it is applied, each failing tag is reported
with its reason, and the other repositories are planned as usual.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.desired.model import VerifyPolicy
from reconciler.model import Digest
from reconciler.model.content import Kind
from reconciler.model.referrers import is_cosign_tag, is_tag_schema_tag, tag_schema_tag
from reconciler.model.signatures import SignatureLayer, verify_image
from reconciler.ops.cascade import RefGraph
from reconciler.ops.state import RepoState
from reconciler.plan.observed import Observed


class Refused(Exception):
    """A repository whose policy refuses some of the tags it would hold: (tag, reason) each."""

    def __init__(self, failures: Sequence[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{t}: {r}" for t, r in failures))
        self.failures = tuple(failures)


class PlannedState:
    """A ``SignatureView`` of the state the plan predicts for a repository."""

    def __init__(self, state: RepoState, graph: RefGraph, observed: Observed) -> None:
        self.state, self.graph, self.observed = state, graph, observed

    def classic_signature(self, digest: Digest) -> Digest | None:
        entry = self.state.tags.get(f"{tag_schema_tag(digest)}.sig")
        return entry.digest if entry is not None else None

    def referrers(self, digest: Digest) -> list[Digest]:
        return [r for r in self.graph.referrers(digest) if r in self.state.content]

    def signatures_in(self, digest: Digest) -> tuple[SignatureLayer, ...]:
        if digest not in self.state.content.manifests:
            return ()
        return self.observed.signatures.get(digest, ())

    def payload(self, blob: Digest) -> bytes | None:
        return self.observed.payloads.get(blob) if blob in self.state.content.blobs else None

    def children(self, digest: Digest) -> list[Digest]:
        if digest not in self.state.content.indexes or self.graph.kind(digest) is not Kind.INDEX:
            return []
        return [c for c in self.graph.children(digest) if c not in self.state.absent]


def check_policy(policy: VerifyPolicy | None, state: RepoState, graph: RefGraph, observed: Observed) -> None:
    """Raise ``Refused`` naming each tag of ``state`` (but cosign's and the tag schema's
    own) whose image no key verifies (no ``policy``: nothing to check)."""
    if policy is None:
        return
    view = PlannedState(state, graph, observed)
    failures = []
    for tag in sorted(state.tags):
        if is_cosign_tag(tag) or is_tag_schema_tag(tag):
            continue
        ok, reason = verify_image(view, state.tags[tag].digest, policy.keys)
        if not ok:
            failures.append((tag, reason))
    if failures:
        raise Refused(failures)
