"""``reconciler push REPO --to REGISTRY_URL/NAME``: the one-off form of a ``push:``
target, through the same path as ``apply -f`` (issue 23).

One way in, as every one-off command (``apply.oneoff``, docs/architecture.md): the command
is the one-repository desired change ``{push: [{registry: URL, name: NAME, tags: ...}]}``
(``desired.oneoff.push_spec``), planned by ``apply.oneoff.plan_change`` with the same
refresh, diff and ``plan_pushes`` as repos.yaml (one HEAD per selected tag at the target)
and applied by the same ``Runner`` (the transfer walk from the store into the registry
sink). Every action but the pushes is left alone, so nothing in the store changes but
the push records; like every one-off command it makes no journal entry (the result says
per target what was pushed). A repository the store does not hold is an error.
"""

from __future__ import annotations

from reconciler.apply.oneoff import run_one_off
from reconciler.apply.result import ApplyResult
from reconciler.apply.runner import RepoProgress
from reconciler.desired.model import DesiredState
from reconciler.desired.oneoff import one_repository, push_spec
from reconciler.errors import RepositoryNotFound
from reconciler.model.registry import RegistryConfig
from reconciler.model.repository import Repository
from reconciler.model.tagfilter import TagFilter
from reconciler.plan.actions import BY_OP, Action, PushReferrers, PushTag
from reconciler.plan.model import Plan
from reconciler.plan.observe import SourceFactory
from reconciler.store.protocol import Store

#: a one-off push leaves alone every action of its plan but the pushes (the diff of a
#: repository declaring nothing but a push target may name others: the feed it no longer declares)
LEFT_ALONE: tuple[type[Action], ...] = tuple(t for t in BY_OP.values() if t not in (PushTag, PushReferrers))


def push_one_off(store: Store, repo_id: str, registry: RegistryConfig, name: str, tags: TagFilter,
                 sources: SourceFactory, *, lock_timeout: float = 60.0, command: str = "push",
                 progress: RepoProgress | None = None) -> tuple[Plan, ApplyResult]:
    """``reconciler push``: plan and apply under the store lock; the plan and the result.
    ``sources`` lends the push client (``api.UpstreamPool``: ``plan.pushes.PushTargets``)."""
    spec = push_spec(repo_id, registry, name, tags)

    def change(repo: Repository | None) -> DesiredState:
        if repo is None:
            raise RepositoryNotFound(f"no repository {repo_id!r} in the store",
                                     hint="`reconciler repo list` shows them; sync or upload it first")
        return one_repository(spec, command)

    return run_one_off(store, change, repo_id, operation=command, lock_timeout=lock_timeout, sources=sources,
                       progress=progress, left_alone=LEFT_ALONE, finish=lambda run: (run.plan, run.result))
