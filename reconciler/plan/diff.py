"""The diff: ``(DesiredState, Observed) -> Plan``. Pure: no store, no network, no clock
unless given.

Repositories are planned in dependency order (a copy's or pin's source before its
target), each against the *predicted* state of its sources after this plan, so a sync and
a copy from the synced repository work in one apply. A copy cycle is an error naming the
cycle. Repositories in the store that repos.yaml does not declare are listed, and removed
only with ``prune_repositories``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.desired.model import DesiredState, RepositorySpec
from reconciler.errors import ConfigError, InvalidInput
from reconciler.plan import model as pm
from reconciler.plan.diff_repo import Ledger, RepoDiff
from reconciler.plan.model import Action, Change, Op, Plan, RepoSummary
from reconciler.plan.observed import Observed


def sources_of(spec: RepositorySpec) -> set[str]:
    """Repositories whose state ``spec`` reads (copies and ``REPO:TAG`` pins)."""
    out = {c.from_repo for c in spec.copies}
    out |= {p.source_repo for p in spec.pins if p.source_repo}
    out.discard(spec.id)
    return out


def dependency_order(repos: Mapping[str, RepositorySpec]) -> list[str]:
    """Sources before targets, ties by name; raises ``ConfigError`` naming a cycle."""
    deps = {r: {s for s in sources_of(spec) if s in repos} for r, spec in repos.items()}
    order: list[str] = []
    done: set[str] = set()
    while len(order) < len(repos):
        ready = sorted(r for r in repos if r not in done and deps[r] <= done)
        if not ready:
            cycle = _find_cycle({r: d - done for r, d in deps.items() if r not in done})
            raise ConfigError(f"copy cycle between repositories: {' -> '.join(cycle)}",
                              hint="a repository cannot copy (or pin a tag) from itself through others")
        order += ready
        done |= set(ready)
    return order


def _find_cycle(deps: Mapping[str, set[str]]) -> list[str]:
    node = min(deps)
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = min(deps[node])
    return path[path.index(node):] + [node]


def with_sources(repos: Mapping[str, RepositorySpec], targets: Iterable[str]) -> set[str]:
    wanted: set[str] = set()
    stack = list(targets)
    while stack:
        r = stack.pop()
        if r in wanted or r not in repos:
            continue
        wanted.add(r)
        stack += sources_of(repos[r])
    return wanted


def diff(desired: DesiredState, observed: Observed, *, targets: Iterable[str] = (),
         prune_repositories: bool = False, created: str = "") -> Plan:
    targets = tuple(targets)
    unknown = [t for t in targets if t not in desired.repositories]
    if unknown:
        raise InvalidInput(f"--target {', '.join(unknown)}: not a repository in {desired.path}",
                           hint=f"repositories: {', '.join(sorted(desired.repositories)) or 'none'}")
    selected = with_sources(desired.repositories, targets) if targets else set(desired.repositories)
    ledger = Ledger(observed)
    actions: list[Action] = []
    summaries: list[RepoSummary] = []
    unmanaged: list[pm.Unmanaged] = []
    for repo_id in dependency_order(desired.repositories):
        spec = desired.repositories[repo_id]
        rd = RepoDiff(spec, observed.repos.get(repo_id), ledger)
        repo_actions = rd.run()
        if repo_id not in selected or repo_id in ledger.not_created:
            continue  # planned only so that targets see its predicted state; or left out
        actions += repo_actions
        if rd.unmanaged:
            unmanaged.append(rd.unmanaged)
        status = "+" if observed.repos.get(repo_id) is None else ("~" if repo_actions else "=")
        label = f"{spec.feed.name}: {spec.upstream_name}" if spec.feed and spec.upstream_name else None
        error = ledger.errors.get(repo_id)
        summaries.append(RepoSummary(repo_id, "!" if error else status, label, spec.publish, error))

    extra = sorted(r for r in observed.repos if r not in desired.repositories)
    kept: list[str] = []
    if not targets:
        for repo_id in extra:
            if not prune_repositories:
                kept.append(repo_id)
                continue
            state = observed.repos[repo_id].state
            action_id = ledger.unique_id(f"{repo_id}/{Op.DELETE_REPOSITORY.value}/repository")
            removes = {k: v for k, v in state.content.counts().items() if v}
            if state.tags:
                removes["tags"] = len(state.tags)
            actions.append(Action(id=action_id, op=Op.DELETE_REPOSITORY, change=Change.DELETE, repo=repo_id,
                                  reason=pm.REMOVED_FROM_DESIRED, removes=removes,
                                  publish_name=observed.repos[repo_id].repository.publish_name))
            summaries.append(RepoSummary(repo_id, "-", None, None))
    return Plan(
        desired_path=str(desired.path),
        desired_digest=desired.digest,
        store_generation=observed.generation,
        actions=tuple(actions),
        repositories=tuple(summaries),
        unmanaged=tuple(unmanaged),
        unknown_repositories=tuple(kept),
        warnings=tuple(ledger.warnings),
        errors=tuple(f"{r}: {e}" for r, e in sorted(ledger.errors.items()) if r in selected),
        failed_tags=tuple(f for f in ledger.failed_tags if f.repo in selected),
        targets=targets,
        prune_repositories=prune_repositories,
        refresh=observed.refresh,
        created=created,
    )
