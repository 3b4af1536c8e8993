"""What apply checks before it changes anything: is the plan complete, and still fresh.

- A plan with errors is refused: applying the rest would look like success while what
  could not be seen silently lagged. With ``--skip-unavailable`` a plan whose only errors
  are upstreams that could not be refreshed is applied without those repositories and
  everything that depends on them (a copy from such a repository waits too);
  ``unavailable`` says which.
- A saved plan made against another store generation, desired file or upload file is
  refused as stale, naming what changed.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from reconciler.desired.model import DesiredState
from reconciler.errors import PlanIncomplete, StalePlan
from reconciler.plan.actions import Upload, V1Upload
from reconciler.plan.model import Plan
from reconciler.store.roles.versions import VersionStore

#: the errors --skip-unavailable applies around: an upstream that could not be refreshed,
#: and what could not be planned only because of one
UNAVAILABLE = ("refresh", "blocked")


def unavailable(plan: Plan) -> set[str]:
    """The repositories whose upstream could not be refreshed, and every repository whose
    actions read from one of them (a copy or pin source, a dependency), to a fixpoint."""
    skipped = {e.repo for e in plan.errors if e.kind in UNAVAILABLE and e.repo}
    repo_of = {a.id: a.repo for a in plan.actions}
    grew = True
    while grew:
        grew = False
        for a in plan.actions:
            if a.repo in skipped:
                continue
            if a.source_repo in skipped or any(repo_of.get(d) in skipped for d in a.depends_on):
                skipped.add(a.repo)
                grew = True
    return skipped


def check_complete(plan: Plan, *, skip_unavailable: bool = False) -> set[str]:
    """Refuse a plan with errors (``PlanIncomplete``); with ``skip_unavailable``, accept
    one whose errors are all refresh failures and return the repositories to leave out."""
    if not plan.errors:
        return set()
    others = [e for e in plan.errors if e.kind not in UNAVAILABLE]
    if skip_unavailable and not others:
        return unavailable(plan)
    shown = others if skip_unavailable else list(plan.errors)
    raise PlanIncomplete("refusing a plan with errors: " + "; ".join(str(e) for e in shown),
                         hint="fix repos.yaml or the upstream and plan again; --skip-unavailable applies what "
                              "does not depend on an upstream that could not be refreshed"
                         if not others else "fix what the errors name in repos.yaml, then plan again")


def check_fresh(plan: Plan, store: VersionStore, desired: DesiredState, file_digest: Callable[[Path], str]) -> None:
    """Refuse a plan made against another store generation, desired file or upload file."""
    problems = []
    generation = store.generation()
    if generation != plan.store_generation:
        problems.append(f"the store changed since the plan was made (generation {plan.store_generation} -> "
                        f"{generation}: another apply or a write happened)")
    if desired.digest != plan.desired_digest:
        problems.append(f"{plan.desired_path} changed since the plan was made "
                        f"({plan.desired_digest[:19]} -> {desired.digest[:19]})")
    files = {a.file: a.file_digest for a in plan.actions if isinstance(a, (Upload, V1Upload)) and a.file_digest}
    for file, planned in files.items():  # each file hashed once, however many repositories upload it
        if file_digest(Path(file)) != planned:
            problems.append(f"upload file {file} changed since the plan was made")
    if problems:
        raise StalePlan("refusing a stale plan: " + "; ".join(problems),
                        hint="make a new plan (`reconciler plan -f FILE --out PLAN`), review it, apply that")
