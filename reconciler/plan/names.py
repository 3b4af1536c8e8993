"""Publish names are owned state: who holds each name now, who repos.yaml gives it to,
and how the plan moves it (pure).

A publish name belongs to at most one repository of the store, whether that repository
serves it or keeps it reserved after an ``unpublish``. When repos.yaml gives a name to
another repository than its holder, the plan hands it over:

- the holder is declared in repos.yaml (with another name, or none): its publication
  action and the claim are applied in ONE store transaction (``handover``), releases
  before claims, so the name is never unserved nor served by the wrong repository, and
  two repositories can swap names;
- the holder is not declared and ``--prune-repositories`` deletes it: the claim releases
  it, and its deletion waits for the claim (a failed claim keeps it serving);
- the holder is not declared and stays: a plan error at the ``publish:`` entry, since
  taking the name would silently unpublish a repository nobody reviewed.

``scope`` widens ``--target`` by the repositories a target's names move between, so a
targeted handover is planned whole.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping

from reconciler.desired.model import DesiredState, RepositorySpec
from reconciler.plan.actions import Action, Op, Publish, Unpublish
from reconciler.plan.model import PlanError


def holders(publish_names: Mapping[str, str | None]) -> dict[str, str]:
    """``{repository id: its publish name or None}`` -> ``{name: repository id}``."""
    return {name: repo for repo, name in publish_names.items() if name}


def partners(desired: DesiredState, held: Mapping[str, str], repo_id: str) -> set[str]:
    """Declared repositories whose publication must switch with ``repo_id``'s: the holder
    of the name it wants, and the repository that wants the name it holds."""
    out: set[str] = set()
    spec = desired.repositories.get(repo_id)
    if spec is not None and spec.publish:
        holder = held.get(spec.publish)
        if holder is not None and holder != repo_id and holder in desired.repositories:
            out.add(holder)
    current = {n for n, r in held.items() if r == repo_id}
    out |= {r for r, s in desired.repositories.items() if s.publish in current and r != repo_id}
    return out


def scope(desired: DesiredState, held: Mapping[str, str], targets: Iterable[str],
          sources: Mapping[str, Iterable[str]] | None = None) -> set[str]:
    """The targets, what they copy from (``sources``: repository -> its sources) and the
    repositories their names move between, to a fixpoint."""
    wanted: set[str] = set()
    stack = list(targets)
    while stack:
        r = stack.pop()
        if r in wanted or r not in desired.repositories:
            continue
        wanted.add(r)
        stack += list((sources or {}).get(r, ()))
        stack += sorted(partners(desired, held, r))
    return wanted


def _not_declared(desired: DesiredState, spec: RepositorySpec, holder: str, targets: bool) -> PlanError:
    name = spec.publish
    prune = ("`reconciler apply -f FILE --prune-repositories` (without --target) deletes it and hands the "
             "name over in one step" if targets else
             "`--prune-repositories` deletes it and hands the name over in one step")
    return PlanError(
        f"publish name {name!r} is held by repository {holder!r}, which {desired.file or desired.path} does not "
        "declare; taking it would stop serving a repository nobody reviewed", repo=spec.id, kind="name",
        where=desired.where("repositories", spec.id, "publish"),
        hint=f"{prune}; or free the name with `reconciler unpublish {holder} --release`; or declare {holder!r} "
             "in repos.yaml")


class _Groups:
    """Union-find over action ids."""

    def __init__(self) -> None:
        self.parent: dict[str, str] = {}

    def find(self, x: str) -> str:
        self.parent.setdefault(x, x)
        while self.parent[x] != x:
            self.parent[x] = self.parent[self.parent[x]]
            x = self.parent[x]
        return x

    def union(self, a: str, b: str) -> None:
        self.parent[self.find(a)] = self.find(b)


def hand_over(actions: list[Action], desired: DesiredState, publish_names: Mapping[str, str | None], *,
              pruning: bool, targets: bool) -> tuple[list[Action], list[PlanError]]:
    """Mark every claim of a name another repository holds (``release_from``), group the
    publication actions that must switch together (``handover``), make a pruned holder's
    deletion wait for the claim, and refuse a claim from a repository repos.yaml does not
    declare (the claim is dropped; the error says why)."""
    held = holders(publish_names)
    errors: list[PlanError] = []
    out: list[Action] = []
    publication = {a.repo: a for a in actions if isinstance(a, (Publish, Unpublish))}
    deletes_after: dict[str, list[str]] = {}
    for a in actions:
        if isinstance(a, Publish) and a.publish_name:
            holder = held.get(a.publish_name)
            if holder is not None and holder != a.repo:
                if holder not in desired.repositories and not (pruning and not targets):
                    errors.append(_not_declared(desired, desired.repositories[a.repo], holder, targets))
                    continue
                a = dataclasses.replace(a, release_from=holder)
                if holder not in desired.repositories:
                    deletes_after.setdefault(holder, []).append(a.id)
        out.append(a)
    groups = _Groups()
    by_id = {a.id: a for a in out}
    for a in out:
        if isinstance(a, Publish) and a.release_from and a.release_from in publication \
                and publication[a.release_from].id in by_id:
            groups.union(a.id, publication[a.release_from].id)
    members: dict[str, list[Publish | Unpublish]] = {}
    for a in out:
        if isinstance(a, (Publish, Unpublish)) and a.id in groups.parent:
            members.setdefault(groups.find(a.id), []).append(a)
    changed: dict[str, Action] = {}
    released_to = {a.release_from: a.repo for a in out if isinstance(a, Publish) and a.release_from}
    for group in members.values():
        key = min(a.publish_name or a.repo for a in group)
        ids = {a.id for a in group}
        # all or nothing: each waits for what every other one waits for
        deps = tuple(dict.fromkeys(d for a in group for d in a.depends_on if d not in ids))
        for a in group:
            reason = a.reason
            if isinstance(a, Unpublish) and a.repo in released_to:
                reason = f"{a.reason}; the name moves to {released_to[a.repo]}"
            changed[a.id] = dataclasses.replace(a, handover=key, reason=reason,
                                                depends_on=tuple(dict.fromkeys((*a.depends_on, *deps))))
    final = []
    for a in out:
        a = changed.get(a.id, a)
        if a.op is Op.DELETE_REPOSITORY and a.repo in deletes_after:
            a = dataclasses.replace(a, depends_on=tuple(dict.fromkeys((*a.depends_on, *deletes_after[a.repo]))))
        final.append(a)
    return final, errors
