"""The publication step of one repository's diff (pure): at most one ``Publish`` or
``Unpublish`` action, after the repository's content and v1 actions (it depends on all of
them: a failed step leaves the publication where it was).

A declared ``publish:`` name is (re)published when the repository has no publication yet,
when the name or ``protected`` changes, when this plan makes a new version, or when the
publication was left behind the latest version (a hand ``repo rollback``, or an apply that
stopped before publishing: drift this apply undoes). A repository that declares no name
but is published is unpublished.
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.desired.model import RepositorySpec
from reconciler.model.repository import Repository
from reconciler.plan import model as pm
from reconciler.plan.actions import Action, Change, Op, Publish, Unpublish
from reconciler.plan.diff_retain import Ids


def publish_step(spec: RepositorySpec, repo: Repository | None, actions: Sequence[Action],
                 ids: Ids) -> Publish | Unpublish | None:
    """The publication action of ``spec``'s repository, or None. ``repo``: the repository
    as the store has it (None for one this plan creates); ``actions``: the repository's
    actions so far; ``ids`` numbers the action in the plan."""
    content_changed = any(a.op not in (Op.CREATE_REPOSITORY, Op.UPDATE_REPOSITORY) for a in actions)
    deps = [a.id for a in actions]
    if spec.publish:
        if repo is None or repo.published_version is None:
            reason, change = pm.DECLARED, Change.CREATE
        elif repo.publish_name != spec.publish or repo.protected != spec.protected:
            reason, change = pm.DECLARED, Change.UPDATE
        elif content_changed:
            reason, change = "new version", Change.UPDATE
            if repo.published_version != repo.latest_version:
                reason += (f" (the publication was at version {repo.published_version}: rolled back by hand, "
                           "or an apply stopped before publishing)")
        elif repo.published_version != repo.latest_version:
            # a hand `repo rollback` (or `publish --version`): drift this apply undoes
            reason = (f"published version {repo.published_version} is behind the latest {repo.latest_version} "
                      "(rolled back by hand, or an apply stopped before publishing; this apply publishes the latest)")
            change = Change.UPDATE
        else:
            return None
        action_id, depends_on = ids(Op.PUBLISH, spec.publish, deps)
        return Publish(id=action_id, repo=spec.id, change=change, reason=reason, depends_on=depends_on,
                       publish_name=spec.publish, protected=spec.protected)
    if repo is not None and repo.published_version is not None:
        action_id, depends_on = ids(Op.UNPUBLISH, repo.publish_name or "", deps)
        return Unpublish(id=action_id, repo=spec.id, change=Change.DELETE, reason=pm.REMOVED_FROM_DESIRED,
                         depends_on=depends_on, publish_name=repo.publish_name)
    return None
