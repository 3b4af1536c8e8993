"""``reconciler push REPO --to REGISTRY_URL/NAME``: the one-off form of a ``push:``
target, through the same path as ``apply -f`` (issue 23).

One way in, as every one-off command (docs/architecture.md): the command is the
one-repository desired change ``{push: [{registry: URL, name: NAME, tags: ...}]}``
(``push_spec``), planned with the same refresh, diff and ``plan_pushes`` as repos.yaml
(``plan_change``: one HEAD per selected tag at the target) and applied by the same
``Runner`` (the transfer walk from the store into the registry sink). What a one-off
command never does is left out of the plan (publications, the repository's feed), so
nothing in the store changes but the push records. A repository the store does not hold
is an error.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from reconciler.apply.result import ApplyResult
from reconciler.apply.runner import RepoProgress, Runner
from reconciler.apply.session import locked
from reconciler.desired.model import DesiredState, PushSpec, RepositorySpec
from reconciler.errors import RepositoryNotFound
from reconciler.model.registry import RegistryConfig
from reconciler.model.repository import Repository
from reconciler.model.tagfilter import TagFilter
from reconciler.plan.actions import Action, PushReferrers, PushTag
from reconciler.plan.diff import diff
from reconciler.plan.model import Plan
from reconciler.plan.observe import refresh
from reconciler.plan.pushes import PushTargets, plan_pushes
from reconciler.store.protocol import Store

R = TypeVar("R")

#: the ``desired_path`` a one-off change's plan names (no file: the command line)
COMMAND_LINE = "<command line>"
#: the only actions of a one-off push (the diff of a repository declaring nothing but a
#: push target may name others, e.g. the feed it no longer declares: left alone)
PUSHES: tuple[type[Action], ...] = (PushTag, PushReferrers)


@dataclass(frozen=True)
class PushRun:
    """What a one-off push planned and did."""

    repo_id: str
    plan: Plan
    result: ApplyResult


def push_spec(repo_id: str, registry: RegistryConfig, name: str, tags: TagFilter) -> RepositorySpec:
    """``reconciler push ID --to URL/NAME [--tags ...]`` as the repos.yaml entry
    ``{push: [{registry: URL, name: NAME, tags: [...]}]}`` (no ``prune``: a one-off push
    never deletes)."""
    return RepositorySpec(id=repo_id, push=(PushSpec(registry, name, tags),))


def one_repository(spec: RepositorySpec, command: str) -> DesiredState:
    """A desired state that declares ``spec`` only (its digest: the command's)."""
    digest = "sha256:" + hashlib.sha256(f"{command}\n{spec!r}".encode()).hexdigest()
    registries = {p.registry.name: p.registry for p in spec.push}
    return DesiredState(path=Path(COMMAND_LINE), digest=digest, version=1, registries=registries,
                        repositories={spec.id: spec}, file=command)


def plan_change(store: Store, desired: DesiredState, repo_id: str, targets: PushTargets) -> Plan:
    """The plan of the one-off push: targeted at ``repo_id``, the push targets read (one
    HEAD per selected tag), only push actions kept. Writes nothing."""
    observed = refresh(store, desired, None, upstreams=False, repo_ids=[repo_id])
    plan = diff(desired, observed, targets=(repo_id,), created=datetime.now(UTC).isoformat(timespec="seconds"))
    plan = plan_pushes(plan, observed, desired, store, targets)
    return dataclasses.replace(plan, actions=tuple(a for a in plan.actions if isinstance(a, PUSHES)))


def run_push(store: Store, change: Callable[[Repository | None], DesiredState], repo_id: str, *, command: str,
             targets: PushTargets, lock_timeout: float = 60.0, progress: RepoProgress | None = None,
             finish: Callable[[PushRun], R]) -> R:
    """Plan and apply the one-repository push ``change`` makes under the store lock."""
    with locked(store, lock_timeout, None):
        found = store.repository_find(repo_id)
        if found is None:
            raise RepositoryNotFound(f"no repository {repo_id!r} in the store",
                                     hint="`reconciler repo list` shows them; sync or upload it first")
        desired = change(found)
        plan = plan_change(store, desired, repo_id, targets)
        if plan.errors or not plan.actions:
            return finish(PushRun(repo_id, plan, ApplyResult(plan.digest())))
        runner = Runner(plan, store, desired, command=command, progress=progress)
        runner.pusher.targets = targets  # (no upstream: nothing is synced)
        return finish(PushRun(repo_id, plan, runner.run()))


def push_one_off(store: Store, repo_id: str, registry: RegistryConfig, name: str, tags: TagFilter,
                 targets: PushTargets, *, lock_timeout: float = 60.0, command: str = "push",
                 progress: RepoProgress | None = None) -> tuple[Plan, ApplyResult]:
    """``reconciler push``: the plan and the apply result."""
    spec = push_spec(repo_id, registry, name, tags)
    return run_push(store, lambda _repo: one_repository(spec, command), repo_id, command=command, targets=targets,
                    lock_timeout=lock_timeout, progress=progress, finish=lambda run: (run.plan, run.result))

