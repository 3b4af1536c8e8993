"""Push targets in the plan (issue 23): after the diff, what each ``push:`` target of each
planned repository needs, as ``PushTag`` / ``DeletePushedTag`` actions.

The tags a repository will have after this plan (the store's, with the plan's tag
actions applied) are selected by each target's ``tags``; the target is read with one
manifest HEAD per selected tag (and per recorded tag ``prune`` may delete). A tag the
target already points at the same digest costs nothing more; for a tag that must go, the
blobs of its closure are HEADed once each, so the plan can say how many are there
already. Sizes come from the manifests (the store's, or those the refresh fetched).

``prune`` deletes only tags the store's push records say we pushed (``store.pushed``),
and only while the target still points them at the digest we pushed: a tag someone
moved since is left alone, with a note. A target that cannot be read makes the plan
incomplete (``PlanError`` kind ``refresh``), like an upstream.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Protocol, runtime_checkable

from reconciler.desired.model import DesiredState, PushSpec
from reconciler.errors import ReconcilerError
from reconciler.model import Digest, Index, Manifest
from reconciler.model.registry import RegistryConfig, registry_key
from reconciler.ops.parallel import ItemFailed, run_bounded
from reconciler.plan.actions import (
    Action,
    Change,
    DeletePushedTag,
    Op,
    PushReferrers,
    PushTag,
    RemoveTag,
    SetTag,
    SyncReferrers,
    Upload,
)
from reconciler.plan.model import Plan, PlanError
from reconciler.plan.observed import Observed
from reconciler.plan.push_heads import EarlyHeads, HeadKey
from reconciler.plan.push_referrers import PlannedReferrer, ReferrersAfter, walk_under, with_cosign_tags
from reconciler.registry.protocol import PushTarget
from reconciler.store.protocol import Store

#: push targets read at once
MAX_PARALLEL_TARGETS = 4
PUSH = "push to {target}"
MOVE = "moved here, {target} still has the old digest"
PRUNED = "pushed by us, no longer selected (prune)"
REFERRERS = "{target} lacks them"


@runtime_checkable
class PushTargets(Protocol):
    """Makes (or lends) the push client of a target registry (``api.UpstreamPool``)."""

    def push_target(self, spec: RegistryConfig) -> PushTarget: ...


def tags_after(plan: Plan, observed: Observed, repo: str) -> dict[str, Digest]:
    """The tags ``repo`` will have once ``plan`` is applied."""
    obs = observed.repos.get(repo)
    tags = {t: e.digest for t, e in obs.state.tags.items()} if obs is not None else {}
    for a in plan.actions_for(repo):
        if isinstance(a, SetTag):
            tags[a.tag] = a.digest
        elif isinstance(a, RemoveTag):
            tags.pop(a.tag, None)
        elif isinstance(a, SyncReferrers):  # cosign's tags (``sha256-<hex>.sig``) are tags like any other
            tags.update({t: Digest.parse(d) for t, d in a.referrer_tags.items()})
        elif isinstance(a, Upload):
            tags.update({t: Digest.parse(d) for t, d in a.upload_tags.items()})
            if a.tag and a.digest:
                tags[a.tag] = a.digest
        elif a.op is Op.DELETE_REPOSITORY:
            tags.clear()
    return tags


def closure_blobs(root: Digest, lookup: Callable[[Digest], Manifest | Index | None]) -> dict[Digest, int] | None:
    """Every blob under ``root`` with its size; None when a manifest is unknown yet."""
    blobs: dict[Digest, int] = {}
    for d, m in walk_under(root, lookup):
        if m is None and d == root:
            return None
        if isinstance(m, Manifest):  # None below the root: a child left out on purpose (a platform subset)
            blobs.update({b.digest: b.size or 0 for b in m.blobs()})
    return blobs


def absent_after(plan: Plan, observed: Observed, repo: str) -> frozenset[Digest]:
    """Index children ``repo`` will lack on purpose once ``plan`` is applied (a platform subset)."""
    obs = observed.repos.get(repo)
    absent = set(obs.state.absent) if obs is not None else set()
    for a in plan.actions_for(repo):
        absent |= set(getattr(a, "skipped", ()) or ())
    return frozenset(absent)


def _without(lookup: Callable[[Digest], Manifest | Index | None], absent: frozenset[Digest],
             ) -> Callable[[Digest], Manifest | Index | None]:
    return (lambda d: None if d in absent else lookup(d)) if absent else lookup


def absent_children(root: Digest, lookup: Callable[[Digest], Manifest | Index | None]) -> int:
    """How many manifests the index ``root`` (and the indexes under it) lists that are not
    known here (0 for a manifest, or an index whose children are all here)."""
    return sum(1 for d, m in walk_under(root, lookup) if m is None and d != root)


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


def plan_pushes(plan: Plan, observed: Observed, desired: DesiredState, store: Store, targets: PushTargets, *,
                early: EarlyHeads | None = None) -> Plan:
    """``plan`` with the push targets' actions added (see the module doc). ``early``: the
    tag HEADs asked while the upstreams were refreshed (only the others are asked now)."""
    started = time.monotonic()
    known = early.known() if early is not None else {}
    actions: list[Action] = []
    errors: list[PlanError] = []
    notes: dict[str, list[str]] = {}

    def lookup(d: Digest) -> Manifest | Index | None:
        found = observed.manifests.get(d) or observed.indexes.get(d)
        if found is None and store.manifest_has(d):
            found = store.manifest_get(d)
        return found

    planned = [r.id for r in plan.repositories if r.status != "!"]
    work: list[tuple[str, PushSpec, dict[str, Digest], dict[str, str], ReferrersAfter]] = []
    for repo in planned:
        spec = desired.repositories.get(repo)
        if spec is None or not spec.push:
            continue
        tags = tags_after(plan, observed, repo)
        setters = {a.tag: a.id for a in plan.actions_for(repo) if isinstance(a, (SetTag, Upload)) and a.tag}
        referrers = ReferrersAfter(plan, observed, store, repo, _without(lookup, absent_after(plan, observed, repo)))
        work += [(repo, target, tags, setters, referrers) for target in spec.push]
    clients = {id(c): c for c in (targets.push_target(t.registry) for _, t, _, _, _ in work)}
    before = {k: (early.before.get(k, c.stats.total) if early else c.stats.total) for k, c in clients.items()}

    def one(item: tuple[str, PushSpec, dict[str, Digest], dict[str, str], ReferrersAfter],
            ) -> tuple[list[Action], list[str]] | PlanError:
        repo, target, tags, setters, referrers = item
        try:
            return _target(repo, target, tags, setters, targets.push_target(target.registry), store,
                           referrers.lookup, referrers, known)
        except ReconcilerError as exc:
            return PlanError(f"push target {target.label}: {exc.message}", repo=repo, kind="refresh",
                             where=desired.where("repositories", repo, "push"), hint=exc.hint)

    # targets are read several at once (each with its registry's max_concurrency)
    for (repo, _, _, _, _), got in run_bounded(one, work, jobs=MAX_PARALLEL_TARGETS):
        if isinstance(got, PlanError):
            errors.append(got)
        else:
            actions += got[0]
            notes.setdefault(repo, []).extend(got[1])
    requests = sum(c.stats.total - before[k] for k, c in clients.items())
    if not actions and not errors and not notes:
        return plan
    changed = {a.repo for a in actions}
    summaries = tuple(dataclasses.replace(r, status="~" if r.id in changed and r.status == "=" else r.status,
                                          notes=r.notes + tuple(notes.get(r.id, ())))
                      for r in plan.repositories)
    refresh = dataclasses.replace(plan.refresh, requests=plan.refresh.requests + requests,
                                  seconds=plan.refresh.seconds + time.monotonic() - started)
    return dataclasses.replace(plan, actions=plan.actions + tuple(actions), repositories=summaries,
                               errors=plan.errors + tuple(errors), refresh=refresh)


def _heads(client: PushTarget, name: str, tags: Iterable[str], jobs: int,
           known: Mapping[HeadKey, Digest | None] | None = None) -> dict[str, Digest | None]:
    known = known or {}
    heard = {t: known[(id(client), name, t)] for t in set(tags) if (id(client), name, t) in known}
    try:
        asked = run_bounded(lambda t: client.manifest_exists(name, t), sorted(set(tags) - set(heard)), jobs=jobs)
    except ItemFailed as failed:
        raise failed.error from None
    return {**heard, **dict(asked)}


def _target(repo: str, target: PushSpec, tags: Mapping[str, Digest], setters: Mapping[str, str],
            client: PushTarget, store: Store, lookup: Callable[[Digest], Manifest | Index | None],
            referrers: ReferrersAfter, known: Mapping[HeadKey, Digest | None]) -> tuple[list[Action], list[str]]:
    key, name, label = registry_key(target.registry.url), target.name, target.label
    jobs = target.registry.max_concurrency
    selected = with_cosign_tags(target.tags.select(sorted(tags)), tags)
    records = {r.tag: r.digest for r in store.pushed(key, name)} if target.prune else {}
    stale = sorted(t for t in records if t not in selected)
    there = _heads(client, name, [*selected, *stale], jobs, known)
    registry = target.registry.name or key
    out: list[Action] = []
    pushing = [t for t in selected if there.get(t) != tags[t]]
    # an index whose children the repository lacks on purpose (a platform subset) would
    # leave the target incomplete (or be refused there): not pushed, and the plan says so
    partial = {t: n for t in pushing if (n := absent_children(tags[t], lookup))}
    pushing = [t for t in pushing if t not in partial]
    closures = {t: closure_blobs(tags[t], lookup) for t in pushing}
    blobs = {b for c in closures.values() if c for b in c}
    try:
        present = {b for b, held in run_bounded(lambda b: client.blob_exists(name, b), sorted(blobs, key=str),
                                                jobs=jobs) if held}
    except ItemFailed as failed:
        raise failed.error from None
    for t in pushing:
        old, closure = there.get(t), closures[t]
        out.append(PushTag(
            id=f"{repo}/{Op.PUSH_TAG.value}/{label}:{t}", repo=repo,
            change=Change.CREATE if old is None else Change.UPDATE,
            reason=PUSH.format(target=label) if old is None else MOVE.format(target=label),
            depends_on=(setters[t],) if t in setters else (), tag=t, digest=tags[t], old_digest=old,
            push_blobs=None if closure is None else len(closure),
            push_bytes=None if closure is None else sum(closure.values()),
            blobs_present=None if closure is None else len(present & closure.keys()),
            target=label, registry=registry, target_name=name))
    out += _referrers(repo, label, registry, name, selected, tags, referrers, client, jobs,
                      {a.tag: a.id for a in out if isinstance(a, PushTag)})
    notes = [f"{label}:{t} not pushed: its index lists {_plural(n, 'manifest')} this repository does not hold "
             "(a platform subset); the target would hold an incomplete image" for t, n in sorted(partial.items())]
    for t in stale:
        if there.get(t) == records[t]:
            out.append(DeletePushedTag(id=f"{repo}/{Op.DELETE_PUSHED_TAG.value}/{label}:{t}", repo=repo,
                                       change=Change.DELETE, reason=PRUNED, tag=t, old_digest=records[t],
                                       target=label, registry=registry, target_name=name))
        elif there.get(t) is not None:
            notes.append(f"{label}:{t} was pushed by us but moved at the target since; prune leaves it alone")
    return out, notes


def _referrers(repo: str, label: str, registry: str, name: str, selected: list[str], tags: Mapping[str, Digest],
               referrers: ReferrersAfter, client: PushTarget, jobs: int, pushed: Mapping[str, str]) -> list[Action]:
    """One ``PushReferrers`` per selected tag whose image has referrers the target lacks
    (a manifest HEAD each; those of a tag pushed in this plan are not asked: they are new there)."""
    wanted: dict[str, list[PlannedReferrer]] = {}
    claimed: set[Digest] = set()
    for t in selected:
        found = [r for r in referrers.of(tags[t]) if r.digest not in claimed]
        claimed |= {r.digest for r in found}
        if found:
            wanted[t] = found
    # (the walk HEADs each manifest again before putting it: a tag pushed now has its referrers planned unasked)
    asked = sorted({r.digest for t, rs in wanted.items() if t not in pushed for r in rs}, key=str)
    held = set(_heads(client, name, [str(d) for d in asked], jobs).items()) if asked else set()
    there = {Digest.parse(ref) for ref, d in held if d is not None}
    out: list[Action] = []
    for t, found in wanted.items():
        missing = [r for r in found if r.digest not in there]
        if not missing:
            continue
        depends = ([pushed[t]] if t in pushed else []) + sorted({r.added_by for r in missing if r.added_by})
        out.append(PushReferrers(
            id=f"{repo}/{Op.PUSH_REFERRERS.value}/{label}:{t}", repo=repo, change=Change.CREATE,
            reason=REFERRERS.format(target=label), depends_on=tuple(depends), tag=t, digest=tags[t],
            digests=tuple(r.digest for r in missing), artifact_types=tuple(r.artifact_type for r in missing),
            target=label, registry=registry, target_name=name))
    return out
