"""The v1 part of a repository's diff: v1 uploads and v1 sync (``enable_v1``).

A v1 upload is planned when importing the file would change the repository's v1 side
(an image it brings is missing, or a v1 tag it sets points elsewhere); a v1 sync when the
upstream's v1 tags are not all in place. Both carry the v1 tags they set (``v1_tags``),
and ``adds`` counts the images and tags they add. Pure: reads ``Observed`` only (``ids``
numbers the actions in the plan).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from reconciler.desired.model import RepositorySpec
from reconciler.model.content import V1Content
from reconciler.plan import model as pm
from reconciler.plan.actions import Change, Op, V1Action, V1Sync, V1Upload
from reconciler.plan.observed import Observed


def _changed(v1: V1Content, images: set[str], tags: Mapping[str, str]) -> tuple[int, int]:
    """(images missing, tags new or moved)."""
    return len(images - v1.images), sum(1 for t, i in tags.items() if v1.tags.get(t) != i)


#: (op, subject) -> the new action's id and what it depends on (``RepoDiff._ids``)
Ids = Callable[[Op, str], tuple[str, tuple[str, ...]]]


def v1_steps(spec: RepositorySpec, observed: Observed, errors: dict[str, str], ids: Ids) -> list[V1Action]:
    """The v1 actions of the repository, in apply order; ``errors`` gets the repository's
    v1 refresh error, if any."""
    v1 = observed.v1.get(spec.id, V1Content())
    images, tags = set(v1.images), dict(v1.tags)
    out: list[V1Action] = []
    for upload in spec.uploads:
        if not upload.v1:
            continue
        info = observed.v1_uploads.get((spec.id, str(upload.file)))
        if info is None:
            continue  # not refreshed for this plan (another target)
        new_images, new_tags = _changed(V1Content(frozenset(images), tags), set(info.images), info.tags)
        if new_images or new_tags:
            action_id, depends_on = ids(Op.V1_UPLOAD, str(upload.file))
            out.append(V1Upload(id=action_id, repo=spec.id, change=Change.CREATE if new_images else Change.UPDATE,
                                reason=pm.DECLARED, depends_on=depends_on, file=str(upload.file),
                                file_digest=info.file_digest, mask_id=upload.mask_id,
                                v1_tags=dict(sorted(info.tags.items())),
                                adds={k: v for k, v in (("v1_images", new_images), ("v1_tags", new_tags)) if v}))
        images |= set(info.images)
        tags.update(info.tags)
    upstream = observed.v1_upstreams.get(spec.id)
    if spec.enable_v1 and upstream is not None:
        if upstream.error:
            errors[spec.id] = f"refreshing the v1 tags of {upstream.name} failed: {upstream.error}"
            return out
        # a v1 tag's image and ancestors are in the version whenever the tag is (the store's
        # invariant), so tags in place mean nothing to fetch
        moved = {t: i for t, i in upstream.tags.items() if tags.get(t) != i}
        if moved:
            reason = pm.NEW_UPSTREAM_TAG if all(t not in tags for t in moved) else pm.TAG_MOVED_UPSTREAM
            action_id, depends_on = ids(Op.V1_SYNC, upstream.name)
            out.append(V1Sync(id=action_id, repo=spec.id, change=Change.CREATE if not v1.tags else Change.UPDATE,
                              reason=reason, depends_on=depends_on, upstream_name=upstream.name,
                              v1_tags=dict(sorted(upstream.tags.items())), adds={"v1_tags": len(moved)}))
    return out
