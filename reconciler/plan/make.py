"""A plan made from a store and repos.yaml: refresh, then the pure diff.

What ``plan``, ``apply -f``, ``drift`` and ``watch`` share. ``--target`` is widened first
(``diff.plan_scope``: sources and the repositories a name moves between), so the refresh
reads only what the plan will look at.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from datetime import UTC, datetime

from reconciler.desired.model import DesiredState
from reconciler.model.gcpause import paused_gc
from reconciler.ops.stop import StopToken
from reconciler.plan.diff import diff, plan_scope
from reconciler.plan.model import Plan
from reconciler.plan.observe import RefreshProgress, SourceFactory, refresh
from reconciler.plan.observed import Observed
from reconciler.plan.push_heads import EarlyHeads
from reconciler.plan.pushes import PushTargets, plan_pushes
from reconciler.plan.v1refresh import V1SourceFactory
from reconciler.store.protocol import Store


def make_plan(store: Store, desired: DesiredState, sources: SourceFactory, *, targets: Sequence[str] = (),
              upstreams: bool = True, prune_repositories: bool = False, progress: RefreshProgress | None = None,
              stop: StopToken | None = None, v1_sources: V1SourceFactory | None = None,
              publish_grace: bool = True) -> tuple[Plan, Observed]:
    """The plan, and what its refresh observed (apply reuses the manifests it fetched).
    ``publish_grace``: whether a publication move keeps its old version served for a while
    (``Observed.publish_grace``: retention keeps those versions)."""
    repo_ids = None
    if targets:
        repo_ids = plan_scope(desired, {r.id: r.publish_name for r in store.repository_list()}, targets)
    # push targets are read as upstreams are: their tag HEADs go out while the upstreams are refreshed
    early = EarlyHeads(store, desired, sources, repo_ids) if upstreams and isinstance(sources, PushTargets) else None
    observed = refresh(store, desired, sources, upstreams=upstreams, repo_ids=repo_ids, v1_sources=v1_sources,
                       progress=progress, stop=stop, publish_grace=publish_grace)
    with paused_gc():  # pure, and a big plan's states and actions are mostly kept
        plan = diff(desired, observed, targets=targets, prune_repositories=prune_repositories,
                    created=datetime.now(UTC).isoformat(timespec="seconds"))
    if upstreams and isinstance(sources, PushTargets):
        plan = plan_pushes(plan, observed, desired, store, sources, early=early)
    elif any(spec.push for spec in desired.repositories.values()):
        plan = dataclasses.replace(plan, warnings=plan.warnings + (
            "push targets not read (--no-refresh): pushes are not shown",))
    return plan, observed
