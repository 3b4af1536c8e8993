"""The retention step of one repository's diff (pure): ``retain_versions: N`` -> at most
one ``DROP_VERSIONS`` action naming exactly the versions it drops.

Planned last, once the repository's other actions are known, because they decide what
retention may drop: the new versions they make count among the newest N (one for the
content actions together, one per v1 action, as apply commits them), a new version
replaces the latest (which may then go, in the same transaction), and an unpublish moves
the publication off the version it pointed at (which apply then drops right after the
switch). A publish that moves the publication leaves the old version in a grace period
(still served by digest, so still protected): a later apply drops it, unless there is no
grace period (``RECONCILER_PUBLISH_GRACE=0``), when it goes right after the switch too.
The rule itself is ``ops.retention.choose``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from reconciler.desired.model import RepositorySpec
from reconciler.model.repository import VersionHistory
from reconciler.ops import retention
from reconciler.ops.state import RepoState
from reconciler.plan.model import Action, Change, Op

#: actions that change a repository's content: together they make one new version
CONTENT_OPS = frozenset({Op.SYNC_TAG, Op.UPLOAD, Op.COPY_TAG, Op.COPY_CONTENT, Op.PIN_TAG, Op.REMOVE_TAG,
                         Op.REMOVE_CONTENT})
#: each of these makes a version of its own
V1_OPS = frozenset({Op.V1_UPLOAD, Op.V1_SYNC})


def new_versions(actions: Sequence[Action]) -> int:
    """How many versions apply makes for these actions of one repository."""
    return int(any(a.op in CONTENT_OPS for a in actions)) + sum(1 for a in actions if a.op in V1_OPS)


def retain_step(spec: RepositorySpec, history: VersionHistory | None, actions: Sequence[Action],
                before: RepoState, after: RepoState, *, publish_grace: bool = True) -> dict[str, Any] | None:
    """The keyword arguments of the ``DROP_VERSIONS`` action (``RepoDiff._add``), or None.
    ``history``: from the store (None for a repository this plan creates); ``publish_grace``:
    see ``Observed.publish_grace``;
    ``before``/``after``: the repository's state at the start and at the end of the plan."""
    if spec.retain_versions is None:
        return None
    if history is None:
        if not any(a.op is Op.CREATE_REPOSITORY for a in actions):
            return None
        # created by this apply: it starts with the empty version 0, which counts too
        history = VersionHistory(spec.id, (0,), {0: (retention.LATEST,)})
    made = new_versions(actions)
    released: set[str] = set()
    if made:
        released.add(retention.LATEST)
    if any(a.op is Op.UNPUBLISH or (a.op is Op.PUBLISH and not publish_grace) for a in actions):
        released.add(retention.PUBLISHED)
    drop = retention.choose(history, spec.retain_versions, new_versions=made, released=released)
    if not drop:
        return None
    frees = retention.freed_bytes(
        history, drop, new_version=bool(made),
        removing={d for d, _ in before.content.difference(after.content).items()},
        adding={d for d, _ in after.content.difference(before.content).items()})
    return {"op": Op.DROP_VERSIONS, "change": Change.DELETE, "subject": "versions",
            "reason": f"retain_versions: {spec.retain_versions}",
            # after everything else of the repository: a failed step keeps the old versions
            "deps": [a.id for a in actions],
            "versions": drop, "frees_bytes": frees}
