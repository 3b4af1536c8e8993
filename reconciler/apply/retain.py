"""Apply's side of ``retain_versions``: when a ``DROP_VERSIONS`` action's versions go.

The runner asks twice. At the repository's version commit (``with_commit``): the versions
that nothing but being the latest protects, which the new version replaces, go in that
commit's transaction. After the repository's other actions (``finish``): the rest (the
version an unpublish, or a publish without a grace period, just moved off), in one
transaction of their own. Nothing goes when the apply stopped or an action the drop
depends on failed (``why_not``); the store refuses a protected version in any case.
"""

from __future__ import annotations

from reconciler.errors import ReconcilerError
from reconciler.model.repository import version_ranges
from reconciler.ops.retention import LATEST
from reconciler.plan.actions import DropVersions
from reconciler.store.roles.versions import VersionStore


def with_commit(store: VersionStore, repo: str, a: DropVersions | None, *, why_not: str | None, changes: bool) -> list[int]:
    """The versions of ``a`` to drop in the transaction of the new version (``changes``:
    the commit makes one; without, the latest stays the latest)."""
    if a is None or why_not is not None:
        return []
    released = {LATEST} if changes else set()
    guarded = store.protected_versions().get(repo, {})
    return [n for n in a.versions if not set(guarded.get(n, ())) - released]


def finish(store: VersionStore, repo: str, a: DropVersions, dropped: list[int], *, why_not: str | None) -> tuple[str, str | None]:
    """Drop what ``with_commit`` left (``dropped``, with the new version); the action's
    status (``done``/``failed``/``skipped``) and error. With v1 versions still to come
    after the OCI one, the runner drops everything here (``with_commit`` is not asked)."""
    rest = [n for n in a.versions if n not in dropped]
    if rest and why_not is not None:
        if dropped:
            return "failed", (f"dropped {version_ranges(dropped)} with the new version; kept "
                              f"{version_ranges(rest)}: {why_not}")
        return "skipped", why_not
    try:
        if rest:
            store.versions_drop(repo, rest)
    except ReconcilerError as exc:
        return "failed", exc.message
    return "done", None
