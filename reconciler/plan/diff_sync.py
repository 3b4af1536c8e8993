"""What the sync step of one repository's diff says besides its actions (pure): which
tags it leaves to the repository's other declarations, why a synced tag moves, and the warnings and notes a reviewer needs when the upstream or the
tag filter selects nothing, a mirror refuses to empty a repository, or tags stay because
mirror is off.

``RepoDiff._sync`` decides the actions; these functions only word what it found.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from reconciler.desired.model import RepositorySpec
from reconciler.model import Digest
from reconciler.model.content import Origin, TagEntry
from reconciler.plan import model as pm
from reconciler.plan.observed import ObservedRepo, UploadInfo, UpstreamTags


def owned_elsewhere(spec: RepositorySpec, uploads: Mapping[tuple[str, str], UploadInfo]) -> set[str]:
    """Tag names another declaration of the repository owns, so its sync leaves them alone:
    a pin, a removal, an upload's ``tag:`` and the tags an upload file names (as the refresh
    read it). Otherwise a sync and an upload of one tag would each take it back on every plan."""
    named = {t for u in spec.uploads if not u.v1 and u.tag is None
             and (info := uploads.get((spec.id, str(u.file)))) is not None for t in info.tags}
    return {p.name for p in spec.pins} | set(spec.remove.tags) | {u.tag for u in spec.uploads if u.tag} | named


def few(tags: Iterable[str], limit: int = 10) -> str:
    """Some tag names for a message: ``a, b, c and 41 more``, ``no tags``."""
    names = sorted(tags)
    if not names:
        return "no tags"
    shown = ", ".join(names[:limit])
    return shown + (f" and {len(names) - limit} more" if len(names) > limit else "")


def _kept(tags: list[str]) -> str:
    return "1 tag kept" if len(tags) == 1 else f"{len(tags)} tags kept"


def sync_reason(current: TagEntry | None, digest: Digest, obs: ObservedRepo | None) -> str:
    """The reason of a ``SyncTag`` setting a tag (``current``: its entry now) to ``digest``."""
    if current is not None and current.digest == digest and current.origin is Origin.SYNC:
        return pm.PLATFORMS_ADDED  # the same target, and content it lacks: platforms now selected
    if current is not None:
        return pm.TAG_MOVED_UPSTREAM
    if obs is not None and digest in obs.state.content and all(e.digest != digest for e in obs.state.tags.values()):
        return pm.TAG_MISSING_HERE  # its image is here untagged: the tag was removed here
    return pm.NEW_UPSTREAM_TAG


def sync_warnings(repo: str, spec: RepositorySpec, upstream: UpstreamTags, *, matching: bool, unresolved: bool,
                  gone: list[str], refused: bool) -> list[str]:
    """The plan's warnings about a sync that selects nothing or removes nothing.
    ``matching``: the filter selects some listed tag; ``unresolved``: some selected tag
    has no digest here; ``gone``: synced tags no longer selected; ``refused``: a mirror
    keeps them because nothing else is selected (and ``allow_empty`` is off)."""
    if not upstream.listed:
        if refused:
            return [f"{repo}: upstream {upstream.name} returned no tags matching the filter; the mirror "
                    f"removes nothing ({_kept(gone)}) unless allow_empty: true"]
        if not spec.allow_empty:
            return [f"{repo}: upstream {upstream.name} lists no tags: nothing to sync (a wrong upstream_name "
                    "looks exactly like this on registries that answer an unknown name with an empty list)"]
    elif not matching and not unresolved and not (spec.mirror and spec.allow_empty):
        # a typo in a filter silently stops a mirror from syncing: say it on every plan
        text = (f"{repo}: the tag filter selects none of the {upstream.listed} tags upstream "
                f"{upstream.name} lists, so nothing is synced (check the filter for a typo)")
        if refused:
            text += f"; the mirror removes nothing ({_kept(gone)}) unless allow_empty: true"
        return [text]
    elif refused:
        return [f"{repo}: every upstream tag the filter selects is pinned or removed "
                f"in repos.yaml; the mirror removes nothing ({_kept(gone)}) unless allow_empty: true"]
    return []


def outranked_note(outranked: list[str], latest: int | None) -> str:
    """The repository note for tags that left the newest ``latest`` while mirror is off."""
    return (f"tag{'' if len(outranked) == 1 else 's'} {few(outranked)} dropped out of the "
            f"newest {latest}: kept, because mirror is off")
