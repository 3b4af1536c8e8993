"""``reconciler push REPO --to REGISTRY_URL/NAME``: the one-off form of a ``push:``
target, through the same path as ``apply -f`` (issue 23).

The command is a one-repository desired state whose repository declares only that push
target; it is planned with the same ``plan_pushes`` (one HEAD per selected tag at the
target) and applied by the same ``Runner`` (the transfer walk from the store into the
registry sink, journaled as ``push REPO --to ...``). Nothing in the store changes but the
push records. A repository the store does not hold is an error.

(When one-off commands go through ``apply.oneoff.run_one_off`` (issue 17 phase C), this
is the place to call it with a ``change`` that adds the push target.)
"""

from __future__ import annotations

from pathlib import Path
from types import MappingProxyType

from reconciler.apply.result import ApplyResult
from reconciler.apply.runner import RepoProgress, Runner
from reconciler.apply.session import locked
from reconciler.desired.model import DesiredState, PushSpec, RepositorySpec
from reconciler.errors import RepositoryNotFound
from reconciler.model.registry import RegistryConfig
from reconciler.model.tagfilter import TagFilter
from reconciler.plan.model import Plan, RepoSummary
from reconciler.plan.observe import refresh
from reconciler.plan.pushes import PushTargets, plan_pushes
from reconciler.store.protocol import Store


def push_desired(repo_id: str, registry: RegistryConfig, name: str, tags: TagFilter) -> DesiredState:
    """The desired state of the one-off push: ``repo_id`` with one push target."""
    spec = RepositorySpec(id=repo_id, push=(PushSpec(registry, name, tags),))
    return DesiredState(path=Path("<push>"), digest="", version=1,
                        registries=MappingProxyType({registry.name: registry}),
                        repositories=MappingProxyType({repo_id: spec}), file="reconciler push")


def push_one_off(store: Store, repo_id: str, registry: RegistryConfig, name: str, tags: TagFilter,
                 targets: PushTargets, *, lock_timeout: float = 60.0, command: str = "push",
                 progress: RepoProgress | None = None) -> tuple[Plan, ApplyResult]:
    """Plan and apply the push of ``repo_id``'s selected tags under the store lock."""
    desired = push_desired(repo_id, registry, name, tags)
    with locked(store, lock_timeout, None):
        if store.repository_find(repo_id) is None:
            raise RepositoryNotFound(f"no repository {repo_id!r} in the store",
                                     hint="`reconciler repo list` shows them; sync or upload it first")
        observed = refresh(store, desired, None, upstreams=False, repo_ids={repo_id})
        empty = Plan(desired_path="<push>", desired_digest="", store_generation=observed.generation,
                     repositories=(RepoSummary(repo_id, "="),), refresh=observed.refresh)
        plan = plan_pushes(empty, observed, desired, store, targets)
        if plan.errors:
            return plan, ApplyResult(plan.digest())
        if not plan.actions:
            return plan, ApplyResult(plan.digest())
        runner = Runner(plan, store, desired, command=command, progress=progress)
        runner.pusher.targets = targets  # (no upstream: nothing is synced)
        return plan, runner.run()
