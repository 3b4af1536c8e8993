"""Copy and remove of Docker v1 images and tags (docs/original-system.md, "Copy and remove
of v1 images").

- copy of an image brings all its ancestors (walking the parents in the source
  repository) and no v1 tags, as the original did; copy of a v1 tag brings the tag (it
  replaces a same-name tag in the target), its image and the image's ancestors. An
  ancestor the source masked stays masked in the target.
- remove of an image removes only that image (no cascade to its parents) and the v1
  tags that point at it. Removing an image that a remaining image has as its parent is
  refused with the children named: the original allowed it and left broken chains.
- remove of a v1 tag removes only the tag.

Images and tags are named by full image id, or by v1 tag name for convenience.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Literal

from reconciler.errors import ContentNotFound, RemovalRefused
from reconciler.model.content import V1Content
from reconciler.model.v1image import is_image_id
from reconciler.ops.result import OpResult, commit_v1
from reconciler.store.protocol import Store


def resolve_images(content: V1Content, names: Iterable[str], *, where: str) -> list[str]:
    """Image ids (or v1 tag names) -> image ids held by ``content``; unknown ones raise."""
    out: list[str] = []
    missing: list[str] = []
    for name in names:
        image_id = name if is_image_id(name) else content.tags.get(name)
        if image_id is None or image_id not in content.images:
            missing.append(name)
        elif image_id not in out:
            out.append(image_id)
    if missing:
        raise ContentNotFound(f"v1 images not in {where}: {', '.join(missing)}",
                              hint="give full 64-hex image ids or v1 tag names; see `reconciler repo show`")
    return out


def with_ancestors(store: Store, source: V1Content, image_ids: Iterable[str], *,
                   where: str) -> tuple[set[str], set[str]]:
    """(images, masked): ``image_ids`` and all their ancestors within ``source``, and the
    masked ids the chains end at."""
    images: set[str] = set()
    masked: set[str] = set()
    todo = list(image_ids)
    stored = store.v1_images_get(source.images)
    while todo:
        current = todo.pop()
        if current in images:
            continue
        images.add(current)
        parent = stored[current].parent if current in stored else None
        if parent is None:
            continue
        if parent in source.images:
            todo.append(parent)
        elif parent in source.masked:
            masked.add(parent)
        else:
            raise ContentNotFound(f"v1 image {current} in {where} has parent {parent}, which {where} lacks",
                                  hint="run `reconciler store check`")
    return images, masked


def copy_v1(store: Store, *, source: str, target: str, kind: Literal["image", "tag"],
            names: Sequence[str] | Literal["all"]) -> OpResult:
    """Copy v1 images (with ancestors) or v1 tags (with their image chains) from
    ``source`` into ``target`` (created if missing): one new version of ``target``."""
    src = store.v1_version_get(source)
    where = f"repository {source!r}"
    tags: dict[str, str] = {}
    if kind == "tag":
        wanted = sorted(src.tags) if names == "all" else list(names)
        missing = [t for t in wanted if t not in src.tags]
        if missing:
            raise ContentNotFound(f"v1 tags not in {where}: {', '.join(missing)}",
                                  hint=f"see `reconciler repo show {source}`")
        tags = {t: src.tags[t] for t in wanted}
        roots = sorted(set(tags.values()))
    else:
        roots = sorted(src.images) if names == "all" else resolve_images(src, names, where=where)
    images, masked = with_ancestors(store, src, roots, where=where)
    if store.repository_find(target) is None:
        store.repository_create(target)
    dst = store.v1_version_get(target)
    all_images = dst.images | images
    after = V1Content(all_images, {**dst.tags, **tags}, frozenset((dst.masked | masked) - all_images))
    details: dict[str, object] = {"source": source, "kind": f"v1-{kind}", "images": sorted(images),
                                  "tags": dict(sorted(tags.items()))}
    return commit_v1(store, target, after, operation=f"copy v1 {kind}s from {source}", details=details)


def remove_v1(store: Store, repo_id: str, kind: Literal["image", "tag"], names: Sequence[str]) -> OpResult:
    """Remove v1 images (and the tags on them) or v1 tags from ``repo_id``."""
    before = store.v1_version_get(repo_id)
    where = f"repository {repo_id!r}"
    if kind == "tag":
        missing = [t for t in names if t not in before.tags]
        if missing:
            raise ContentNotFound(f"v1 tags not in {where}: {', '.join(missing)}",
                                  hint=f"see `reconciler repo show {repo_id}`")
        after = V1Content(before.images, {t: i for t, i in before.tags.items() if t not in names}, before.masked)
        return commit_v1(store, repo_id, after, operation="remove v1 tags", details={"tags": sorted(names)})
    gone = set(resolve_images(before, names, where=where))
    remaining = before.images - gone
    stored = store.v1_images_get(remaining)
    children = sorted(f"{i} (child of {img.parent})" for i, img in stored.items() if img.parent in gone)
    if children:
        raise RemovalRefused(f"cannot remove v1 images from {where}: remaining images have them as parent: "
                             + ", ".join(children),
                             hint="remove the child images too (v1 removal does not cascade)")
    tags = {t: i for t, i in before.tags.items() if i not in gone}
    after = V1Content(remaining, tags, before.masked)
    details = {"images": sorted(gone), "tags_removed": sorted(set(before.tags) - set(tags))}
    return commit_v1(store, repo_id, after, operation="remove v1 images", details=details)
