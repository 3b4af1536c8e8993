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

from collections.abc import Callable, Iterable, Sequence

from reconciler.desired.model import RepositorySpec
from reconciler.model.repository import VersionHistory
from reconciler.ops import retention
from reconciler.ops.state import RepoState
from reconciler.plan.actions import (
    Action,
    Change,
    CopyContent,
    CopyReferrers,
    CopyTag,
    DropVersions,
    Op,
    PinTag,
    Publish,
    RemoveContent,
    RemoveTag,
    SyncReferrers,
    SyncTag,
    Unpublish,
    Upload,
    V1Sync,
    V1Upload,
)

#: actions that change a repository's content: together they make one new version
CONTENT = (SyncTag, SyncReferrers, Upload, CopyTag, CopyContent, CopyReferrers, PinTag, RemoveTag, RemoveContent)
#: each of these makes a version of its own
V1 = (V1Upload, V1Sync)

#: (op, subject, deps) -> the new action's id and what it depends on (``RepoDiff._ids``)
Ids = Callable[[Op, str, Iterable[str]], tuple[str, tuple[str, ...]]]


def new_versions(actions: Sequence[Action]) -> int:
    """How many versions apply makes for these actions of one repository."""
    return int(any(isinstance(a, CONTENT) for a in actions)) + sum(1 for a in actions if isinstance(a, V1))


def retain_step(spec: RepositorySpec, history: VersionHistory | None, actions: Sequence[Action],
                before: RepoState, after: RepoState, ids: Ids, *, publish_grace: bool = True) -> DropVersions | None:
    """The ``DROP_VERSIONS`` action of the repository, or None. ``history``: from the store
    (None for a repository this plan creates); ``publish_grace``: see
    ``Observed.publish_grace``; ``before``/``after``: the repository's state at the start and
    at the end of the plan; ``ids`` numbers the action in the plan."""
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
    if any(isinstance(a, Unpublish) or (isinstance(a, Publish) and not publish_grace) for a in actions):
        released.add(retention.PUBLISHED)
    drop = retention.choose(history, spec.retain_versions, new_versions=made, released=released)
    if not drop:
        return None
    frees = retention.freed_bytes(
        history, drop, new_version=bool(made),
        removing={d for d, _ in before.content.difference(after.content).items()},
        adding={d for d, _ in after.content.difference(before.content).items()})
    # after everything else of the repository: a failed step keeps the old versions
    action_id, depends_on = ids(Op.DROP_VERSIONS, "versions", [a.id for a in actions])
    return DropVersions(id=action_id, repo=spec.id, change=Change.DELETE,
                        reason=f"retain_versions: {spec.retain_versions}", depends_on=depends_on,
                        versions=tuple(drop), frees_bytes=frees)
