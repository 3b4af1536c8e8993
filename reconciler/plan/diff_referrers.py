"""The plan's referrer lines (pure): for each synced tag, the referrers its image has
upstream that the repository lacks, as one ``SyncReferrers`` action per tag
(``+ 2 referrers of 1.2.5: signature, SBOM``).

What refresh found (``UpstreamTags.referrers``, by subject; ops/referrers.py) is followed
from the tag's digest through referrers of referrers. The referrer manifests become content
of the repository (untagged, as OCI 1.1 referrers are: the referrers API finds them by
their subject), cosign's classic tags become synced tags. Both count as declared, so
``prune`` keeps them and the "unmanaged" note does not count them.

When the upstream could not be refreshed, or its referrers could not be looked up, nothing
is known about them: the cosign tags and the untagged content the repository holds stay
declared (a prune never removes what it cannot see).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from reconciler.model import Digest
from reconciler.model.content import ContentSet, Origin
from reconciler.model.referrers import is_cosign_tag
from reconciler.ops.referrers import Found
from reconciler.plan import model as pm
from reconciler.plan import steps
from reconciler.plan.actions import Change, Op, SyncReferrers
from reconciler.plan.observed import UpstreamTags

if TYPE_CHECKING:
    from reconciler.plan.diff_repo import RepoDiff

def closure(found: Mapping[Digest, tuple[Found, ...]], root: Digest) -> list[Found]:
    """The referrers of ``root`` and of theirs, breadth first, each once."""
    out: list[Found] = []
    seen, level = {root}, [root]
    while level:
        nxt: list[Digest] = []
        for d in level:
            for f in found.get(d, ()):
                if f.digest not in seen:
                    seen.add(f.digest)
                    out.append(f)
                    nxt.append(f.digest)
        level = nxt
    return out


def plan_referrers(diff: RepoDiff, upstream: UpstreamTags, selected: Mapping[str, Digest], excluded: set[str]) -> None:
    """One ``SyncReferrers`` per selected tag whose image has referrers the repository
    lacks (see the module doc)."""
    if upstream.referrers_error is not None:
        keep_unseen(diff)
        diff.ledger.warnings.append(f"{diff.repo}: the referrers of its images could not be looked up "
                                    f"({upstream.referrers_error}); those held are kept, none are added")
        return
    for tag in sorted(selected):
        found = closure(upstream.referrers, selected[tag])
        if not found:
            continue
        tags = {f.tag: f.digest for f in found if f.tag is not None and f.tag not in excluded}
        diff.declared_roots |= {f.digest for f in found}
        diff.declared_tags |= set(tags)
        before = diff.state
        new = [f for f in found if f.digest not in before.content]
        moved = {t: str(d) for t, d in tags.items() if (e := before.tags.get(t)) is None or e.digest != d}
        if not new and not moved:
            continue
        digests = tuple(dict.fromkeys([f.digest for f in new] + [Digest.parse(d) for d in moved.values()]))
        step = steps.add_referrers(before, diff.graph, digests, moved)
        added = step.state.content.difference(before.content)
        setter = diff.ledger.tag_setter.get((diff.repo, tag))
        action_id, depends_on = diff._ids(Op.SYNC_REFERRERS, tag, [setter] if setter else [])
        kinds = {f.digest: f.artifact_type or "" for f in found}
        action = SyncReferrers(id=action_id, repo=diff.repo, change=Change.CREATE, reason=pm.REFERRERS_UPSTREAM,
                               depends_on=depends_on, tag=tag, digest=selected[tag], digests=digests,
                               referrer_tags=moved, artifact_types=tuple(kinds[d] for d in digests),
                               download=diff.ledger.download_for(added),
                               adds=_adds(added, len(moved)))
        diff.actions.append(action)
        diff.state = step.state
        diff._bring(action, before)


def keep_unseen(diff: RepoDiff) -> None:
    """Referrers cannot be seen now: what may be one stays declared."""
    diff.declared_tags |= {t for t, e in diff.state.tags.items() if e.origin is Origin.SYNC and is_cosign_tag(t)}
    orphans = diff.unreferenced()
    diff.declared_roots |= set(orphans.manifests | orphans.indexes)


def _adds(content: ContentSet, tags: int) -> dict[str, int]:
    out = {k: v for k, v in content.counts().items() if v}
    if tags:
        out["tags"] = tags
    return out
