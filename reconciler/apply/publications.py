"""The publication switches of an apply, as the plan groups them.

A publication action on its own (publish a repository's new version under its own name,
unpublish it) is one store write, as ``ops.publish`` does it. A publish name that moves
between repositories is different: the plan marks the claim with ``release_from`` and
gives the publication actions that must switch together one ``handover`` key. Those are
held back until every member's repository has its new version, then applied as ONE
``Store.publications_switch``: all of them or none, so the name is never unserved nor
served by the wrong repository (a failed member fails the whole switch, and the old
publications keep serving).
"""

from __future__ import annotations

from collections.abc import Sequence

from reconciler.model.repository import PublicationChange, Repository
from reconciler.ops.publish import switch as switch_op
from reconciler.plan.actions import PublicationAction, Publish
from reconciler.plan.model import Plan
from reconciler.store.protocol import Store


def grouped(action: PublicationAction) -> bool:
    """Whether ``action`` is switched through ``changes`` rather than on its own."""
    return action.handover is not None or (isinstance(action, Publish) and action.release_from is not None)


def group_of(plan: Plan, action: PublicationAction) -> list[PublicationAction]:
    """The publication actions ``action`` switches with (itself included), in plan order."""
    if action.handover is None:
        return [action]
    return [a for a in plan.actions if isinstance(a, PublicationAction) and a.handover == action.handover]


def changes(store: Store, group: Sequence[PublicationAction]) -> list[PublicationChange]:
    """What ``Store.publications_switch`` must do for ``group``: each publish serves its
    repository's latest version (committed by now) under its name; a repository that
    gives its name up (``release_from``) keeps none; an unpublish keeps its name reserved
    unless the name is given to another repository."""
    released = {a.release_from for a in group if isinstance(a, Publish) and a.release_from}
    out: dict[str, PublicationChange] = {}
    for a in group:
        repo = store.repository_get(a.repo)
        if isinstance(a, Publish):
            out[a.repo] = PublicationChange(a.repo, a.publish_name, repo.latest_version, a.protected)
        else:
            out[a.repo] = PublicationChange(a.repo, None if a.repo in released else repo.publish_name)
    for holder in sorted(released - out.keys()):
        if holder is not None and store.repository_find(holder) is not None:
            out[holder] = PublicationChange(holder, None)
    return list(out.values())


def switch_group(store: Store, group: Sequence[PublicationAction]) -> tuple[list[PublicationChange], list[dict[str, object]]]:
    """Switch ``group`` in one store transaction: the changes made, and what the journal
    records of them (``switched``)."""
    todo = changes(store, group)
    before = [store.repository_get(c.repo_id) for c in todo]
    switch_op(store, todo)
    return todo, switched(before, [store.repository_get(c.repo_id) for c in todo])


def switched(before: Sequence[Repository], after: Sequence[Repository]) -> list[dict[str, object]]:
    """For the journal, every name whose publication changed: ``name``, ``repo`` and
    ``version`` now, ``from_repo`` and ``from_version`` before (None: not served)."""
    old = {r.publish_name: r for r in before if r.publish_name and r.published_version is not None}
    new = {r.publish_name: r for r in after if r.publish_name and r.published_version is not None}
    out: list[dict[str, object]] = []
    for name in sorted(old.keys() | new.keys()):
        o, n = old.get(name), new.get(name)
        if o is not None and n is not None and (o.id, o.published_version) == (n.id, n.published_version):
            continue
        out.append({"name": name, "repo": n.id if n else None, "version": n.published_version if n else None,
                    "from_repo": o.id if o else None, "from_version": o.published_version if o else None})
    return out
