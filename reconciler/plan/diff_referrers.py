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

import operator
from collections.abc import Container, Iterable, Mapping
from typing import TYPE_CHECKING

from reconciler.desired.model import ALL
from reconciler.model import Digest
from reconciler.model.content import ContentSet, Origin
from reconciler.model.referrers import COSIGN_SUFFIXES, ReferrerPolicy, breadth_first, cosign_tags, is_cosign_tag
from reconciler.ops.referrers import MAX_DEPTH, Found
from reconciler.ops.state import RepoState
from reconciler.plan import model as pm
from reconciler.plan import steps
from reconciler.plan.actions import Change, CopyReferrers, Op, SyncReferrers
from reconciler.plan.diff_copy import copy_names, plan_copies
from reconciler.plan.observed import UpstreamTags

if TYPE_CHECKING:
    from reconciler.plan.diff_repo import RepoDiff

def closure(found: Mapping[Digest, tuple[Found, ...]], root: Digest) -> list[Found]:
    """The referrers of ``root`` and of theirs, breadth first, each once."""
    return breadth_first([root], lambda d: found.get(d, ()))


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


def copy_referrers(diff: RepoDiff, src: RepoState, source: str, roots: Iterable[Digest], skip: Container[Digest],
                   policy: ReferrerPolicy, *, tag: str | None = None, deps: Iterable[str] = ()) -> None:
    """One ``CopyReferrers`` for what a copy of ``roots`` from ``source`` (its state
    ``src`` after this plan) brings, when the source holds referrers of it the repository
    lacks: the manifests whose recorded ``subject`` is a copied manifest or index (and
    theirs, at most ``MAX_DEPTH`` levels below), and cosign's classic tags of those digests,
    as ``policy`` (``referrers:`` of the copy entry) selects them by artifact type."""
    if not policy.enabled:
        return
    graph = diff.graph
    copied = graph.closure(roots, skip)
    held = src.content.manifests | src.content.indexes
    level = sorted(copied.manifests | copied.indexes, key=str)
    seen: set[Digest] = set(level)
    found: dict[Digest, str] = {}  # referrer -> artifact type
    tags: dict[str, Digest] = {}
    for _ in range(MAX_DEPTH + 1):
        nxt: list[Digest] = []
        for d in level:
            for r in graph.referrers(d):
                kind = graph.artifact_type(r)
                if r in held and r not in seen and policy.wants(kind):
                    seen.add(r)
                    found[r] = kind or ""
                    nxt.append(r)
            for name in cosign_tags(d):
                entry = src.tags.get(name)
                if entry is None:
                    continue
                kind = diff.ledger.observed.classic_types.get(entry.digest)
                if not policy.wants(kind):
                    continue
                tags[name] = entry.digest
                if entry.digest not in seen:
                    seen.add(entry.digest)
                    found[entry.digest] = kind or ""
                    nxt.append(entry.digest)
        if not nxt:
            break
        level = nxt
    if not found:
        return
    diff.declared_roots |= set(found)
    diff.declared_tags |= set(tags)
    before = diff.state
    moved = {t: str(d) for t, d in tags.items() if (e := before.tags.get(t)) is None or e.digest != d}
    digests = tuple(d for d in found if d not in before.content or str(d) in moved.values())
    if not digests and not moved:
        return
    step = steps.add_referrers(before, graph, digests, moved, Origin.COPY)
    added = step.state.content.difference(before.content)
    first = next(iter(roots), None)
    providers = sorted({diff.ledger.provider[(source, d)] for d, _ in graph.closure(digests).items()
                        if (source, d) in diff.ledger.provider})
    providers += [diff.ledger.tag_setter[(source, t)] for t in tags if (source, t) in diff.ledger.tag_setter]
    action_id, depends_on = diff._ids(Op.COPY_REFERRERS, tag or f"{first}", [*deps, *providers])
    action = CopyReferrers(id=action_id, repo=diff.repo, change=Change.CREATE, reason=pm.DECLARED,
                           depends_on=depends_on, source_repo=source, tag=tag, digest=first, digests=digests,
                           referrer_tags=moved, artifact_types=tuple(found.get(d, "") for d in digests),
                           adds=_adds(added, len(moved)))
    diff.actions.append(action)
    diff.state = step.state
    diff._bring(action, before)


def copies_with_referrers(diff: RepoDiff) -> None:
    """The repository's copy step: its copies (``diff_copy.plan_copies``), then for each copy
    entry the referrers of what it copies (``copy_referrers``), tag by tag and for its
    manifests and indexes."""
    plan_copies(diff)
    for n, copy in enumerate(diff.spec.copies):
        src = diff._source_state(copy.from_repo, ("repositories", diff.repo, "copy", n))
        for tag in copy_names(copy.tags, src.tags):
            entry = src.tags.get(tag)
            if entry is None:
                continue  # failed upstream: the copy said so
            skip, _ = diff._skips([entry.digest], copy.platforms, src.absent)
            setter = diff.ledger.tag_setter.get((copy.from_repo, tag))
            copy_referrers(diff, src, copy.from_repo, [entry.digest], skip, copy.referrers, tag=tag,
                           deps=[setter] if setter else [])
        for kind, selection, pool in (("manifest", copy.manifests, src.content.manifests),
                                      ("index", copy.indexes, src.content.indexes)):
            if selection != ALL and not selection:
                continue
            digests = sorted(pool) if selection == ALL else [Digest.parse(d) for d in selection]
            skip, _ = diff._skips(digests, copy.platforms if kind == "index" else None, src.absent)
            copy_referrers(diff, src, copy.from_repo, digests, skip, copy.referrers)


#: whether a tag ends as every cosign tag does: a test in C before ``is_cosign_tag``'s in
#: Python (a big ``plan --no-refresh`` asks it of every synced tag)
_COSIGN_ENDINGS = tuple(f".{suffix}" for suffix in COSIGN_SUFFIXES)
_ENDS_LIKE_COSIGN = operator.methodcaller("endswith", _COSIGN_ENDINGS)


def keep_unseen(diff: RepoDiff, synced: Iterable[str] | None = None) -> None:
    """Referrers cannot be seen now: what may be one stays declared. ``synced``: the
    names of the state's tags of origin sync, when the caller has them already."""
    if synced is None:
        synced = [t for t, e in diff.state.tags.items() if e.origin is Origin.SYNC]
    diff.declared_tags |= {t for t in filter(_ENDS_LIKE_COSIGN, synced) if is_cosign_tag(t)}
    orphans = diff.unreferenced()
    diff.declared_roots |= set(orphans.manifests | orphans.indexes)


def _adds(content: ContentSet, tags: int) -> dict[str, int]:
    out = {k: v for k, v in content.counts().items() if v}
    if tags:
        out["tags"] = tags
    return out
