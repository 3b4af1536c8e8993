"""The v1 part of a repository's diff: v1 uploads and v1 sync (``enable_v1``).

A v1 upload is planned when importing the file would change the repository's v1 side
(an image it brings is missing, or a v1 tag it sets points elsewhere); a v1 sync when the
upstream's v1 tags are not all in place. Both carry the v1 tags they set (``v1_tags``),
and ``adds`` counts the images and tags they add. Pure: reads ``Observed`` only.
"""

from __future__ import annotations

from collections.abc import Mapping

from reconciler.desired.model import RepositorySpec
from reconciler.model.content import V1Content
from reconciler.plan import model as pm
from reconciler.plan.model import Change, Op
from reconciler.plan.observed import Observed


def _changed(v1: V1Content, images: set[str], tags: Mapping[str, str]) -> tuple[int, int]:
    """(images missing, tags new or moved)."""
    return len(images - v1.images), sum(1 for t, i in tags.items() if v1.tags.get(t) != i)


def v1_steps(spec: RepositorySpec, observed: Observed, errors: dict[str, str]) -> list[dict[str, object]]:
    """Keyword arguments of the actions to add (``op``, ``change``, ``subject``, ...), in
    apply order; ``errors`` gets the repository's v1 refresh error, if any."""
    v1 = observed.v1.get(spec.id, V1Content())
    images, tags = set(v1.images), dict(v1.tags)
    out: list[dict[str, object]] = []
    for upload in spec.uploads:
        if not upload.v1:
            continue
        info = observed.v1_uploads.get((spec.id, str(upload.file)))
        if info is None:
            continue  # not refreshed for this plan (another target)
        new_images, new_tags = _changed(V1Content(frozenset(images), tags), set(info.images), info.tags)
        if new_images or new_tags:
            out.append({"op": Op.V1_UPLOAD, "change": Change.CREATE if new_images else Change.UPDATE,
                        "subject": str(upload.file), "reason": pm.DECLARED, "file": str(upload.file),
                        "file_digest": info.file_digest, "mask_id": upload.mask_id,
                        "v1_tags": dict(sorted(info.tags.items())),
                        "adds": {k: v for k, v in (("v1_images", new_images), ("v1_tags", new_tags)) if v}})
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
            out.append({"op": Op.V1_SYNC, "change": Change.CREATE if not v1.tags else Change.UPDATE,
                        "subject": upstream.name, "reason": reason, "upstream_name": upstream.name,
                        "v1_tags": dict(sorted(upstream.tags.items())),
                        "adds": {"v1_tags": len(moved)}})
    return out
