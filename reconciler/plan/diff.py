"""The diff: ``(DesiredState, Observed) -> Plan``. Pure: no store, no network, no clock
unless given.

Repositories are planned in dependency order (a copy's or pin's source before its
target), each against the *predicted* state of its sources after this plan, so a sync and
a copy from the synced repository work in one apply. A copy cycle is an error naming the
cycle. A repository repos.yaml asks the impossible of (a copied tag its source will not
have) becomes a plan error at its entry's FILE:LINE:COL and the rest is still planned.
Repositories in the store that repos.yaml does not declare are listed, and removed only
with ``prune_repositories``. Publish names move between repositories as ``names`` says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from reconciler.desired.model import DesiredState, RepositorySpec
from reconciler.errors import ConfigError, InvalidInput
from reconciler.ops.state import RepoState
from reconciler.plan import model as pm
from reconciler.plan import names
from reconciler.plan.actions import Action, Change, DeleteRepository, Op
from reconciler.plan.diff_repo import RepoDiff
from reconciler.plan.diff_verify import Refused, check_policy
from reconciler.plan.ledger import Ledger, Unplannable
from reconciler.plan.model import Plan, PlanError, RepoSummary
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


def plan_scope(desired: DesiredState, publish_names: Mapping[str, str | None], targets: Iterable[str]) -> set[str]:
    """What ``--target`` plans: the targets, the repositories they copy from, and those
    their publish names move between (``publish_names``: repository id -> its name in the
    store), to a fixpoint. Nothing else is read, refreshed or checked."""
    sources = {r: sources_of(spec) for r, spec in desired.repositories.items()}
    return names.scope(desired, names.holders(publish_names), targets, sources)


def diff(desired: DesiredState, observed: Observed, *, targets: Iterable[str] = (),
         prune_repositories: bool = False, created: str = "") -> Plan:
    targets = tuple(targets)
    unknown = [t for t in targets if t not in desired.repositories]
    if unknown:
        raise InvalidInput(f"--target {', '.join(unknown)}: not a repository in {desired.path}",
                           hint=f"repositories: {', '.join(sorted(desired.repositories)) or 'none'}")
    publish_names = {r: o.repository.publish_name for r, o in observed.repos.items()}
    selected = plan_scope(desired, publish_names, targets) if targets else set(desired.repositories)
    ledger = Ledger(observed)
    actions: list[Action] = []
    summaries: list[RepoSummary] = []
    unmanaged: list[pm.Unmanaged] = []
    errors: list[PlanError] = []
    #: repositories whose upstream could not be refreshed, and those reading from one
    unavailable: set[str] = set()
    for repo_id in dependency_order(desired.repositories):
        if repo_id not in selected:
            continue  # an untargeted repository is not read, planned or checked
        spec = desired.repositories[repo_id]
        obs = observed.repos.get(repo_id)
        rd = RepoDiff(spec, obs, ledger)
        waits_for = sorted(s for s in sources_of(spec) if s in unavailable)
        try:
            repo_actions = rd.run()
            check_policy(spec.verify, rd.state, ledger.graph, observed)  # a refusal undoes the repository
        except Refused as exc:
            # the verify: policy refuses tags it would hold: none of its actions are applied,
            # each tag is reported (as a failed tag: the rest of the plan is applied, exit 1)
            ledger.forget(a.id for a in rd.actions)
            ledger.after[repo_id] = obs.state if obs else RepoState()
            ledger.failed_tags += [pm.FailedTag(repo_id, tag, reason, refused=True) for tag, reason in exc.failures]
            assert spec.verify is not None
            summaries.append(RepoSummary(repo_id, "!", _label(spec), spec.publish, notes=(
                f"refused by its verify policy ({spec.verify.names}): "
                f"{len(exc.failures)} tag{'s' if len(exc.failures) != 1 else ''} without a verified signature; "
                "nothing of this repository is applied",)))
            continue
        except Unplannable as exc:
            # this repository is not planned; the others are, against its current state
            ledger.forget(a.id for a in rd.actions)
            ledger.after[repo_id] = obs.state if obs else RepoState()
            if waits_for:  # a consequence of the source nobody could read, not of repos.yaml
                problem = PlanError(f"waits for {', '.join(waits_for)}, whose upstream could not be refreshed "
                                    f"({exc.message})", repo=repo_id, kind="blocked")
                unavailable.add(repo_id)
            else:
                problem = PlanError(exc.message, repo=repo_id, kind="semantic", where=desired.where(*exc.path),
                                    hint=exc.hint)
            errors.append(problem)
            summaries.append(RepoSummary(repo_id, "!", _label(spec), spec.publish, exc.message))
            continue
        if waits_for or repo_id in ledger.errors:
            unavailable.add(repo_id)
        if repo_id in ledger.not_created:
            continue  # a new repository whose upstream lists no tags: left out (a warning says so)
        actions += repo_actions
        if rd.unmanaged:
            unmanaged.append(rd.unmanaged)
        status = "+" if obs is None else ("~" if repo_actions else "=")
        error = ledger.errors.get(repo_id)
        upstream = observed.upstreams.get(repo_id)
        summaries.append(RepoSummary(repo_id, "!" if error else status, _label(spec), spec.publish, error,
                                     selection=upstream.selection or None if upstream else None,
                                     notes=tuple(rd.notes)))
    errors += [PlanError(e, repo=r, kind="refresh") for r, e in sorted(ledger.errors.items()) if r in selected]

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
            actions.append(DeleteRepository(id=action_id, change=Change.DELETE, repo=repo_id,
                                            reason=pm.REMOVED_FROM_DESIRED, removes=removes,
                                            publish_name=observed.repos[repo_id].repository.publish_name))
            summaries.append(RepoSummary(repo_id, "-", None, None))
    actions, name_errors = names.hand_over(actions, desired, publish_names, pruning=prune_repositories,
                                           targets=bool(targets))
    for e in name_errors:
        summaries = [dataclasses.replace(r, status="!", error=e.message) if r.id == e.repo else r
                     for r in summaries]
    return Plan(
        desired_path=str(desired.path),
        desired_digest=desired.digest,
        store_generation=observed.generation,
        actions=tuple(actions),
        repositories=tuple(summaries),
        unmanaged=tuple(unmanaged),
        unknown_repositories=tuple(kept),
        warnings=tuple(ledger.warnings),
        errors=tuple(errors + name_errors),
        failed_tags=tuple(f for f in ledger.failed_tags if f.repo in selected),
        targets=targets,
        prune_repositories=prune_repositories,
        refresh=observed.refresh,
        created=created,
    )


def _label(spec: RepositorySpec) -> str | None:
    return f"{spec.feed.name}: {spec.upstream_name}" if spec.feed and spec.upstream_name else None
