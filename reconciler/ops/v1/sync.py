"""v1 sync (docs/original-system.md, "Sync from a v1 registry"): a repository's Docker v1
images and tags from an upstream that speaks the v1 registry API (``enable_v1: true`` on a
repository with a feed).

Read the upstream tags (``{tag: image_id}``), take the union of the tagged images'
ancestries as the images needed, download ``json`` and ``layer`` of each one the store
does not hold (the layer bytes as served, hashed while they are written to the store),
then make one version: the needed images added, the upstream tags merged in (a tag
moves to the upstream's image; tags the upstream does not have are never deleted: v1
sync is additive, as in the original). ``tags`` (the plan's reviewed ``{tag: id}``) makes
apply fetch exactly what was reviewed, even if the upstream moved meanwhile.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Iterator, Mapping
from typing import Protocol

from reconciler.errors import SyncFailed
from reconciler.model import DigestHasher
from reconciler.model.content import V1Content
from reconciler.model.v1image import V1Image, parse_image_json
from reconciler.ops.result import OpResult, commit_v1
from reconciler.store.protocol import Store

log = logging.getLogger(__name__)


class V1Source(Protocol):
    """What v1 sync needs from an upstream (``reconciler.registry.v1client.V1Client``)."""

    def tags(self, name: str) -> dict[str, str]: ...
    def ancestry(self, image_id: str) -> list[str]: ...
    def image_json(self, image_id: str) -> bytes: ...
    def layer(self, image_id: str) -> Iterator[bytes]: ...
    def close(self) -> None: ...


def fetch_v1_images(store: Store, source: V1Source, tags: Mapping[str, str], *, where: str) -> tuple[set[str], int]:
    """Store every image the tagged images need (their ancestries); (needed ids, fetched)."""
    ancestries: dict[str, tuple[str, ...]] = {}
    for image_id in sorted(set(tags.values())):
        if image_id in ancestries:
            continue
        chain = tuple(source.ancestry(image_id))
        for i, a in enumerate(chain):  # every suffix is an ancestor's ancestry
            ancestries.setdefault(a, chain[i:])
    needed = set(ancestries)
    have = store.v1_images_get(needed)
    images: list[V1Image] = []
    for image_id in sorted(needed - set(have)):
        raw = source.image_json(image_id)
        meta = parse_image_json(raw, where=f"{where}: image {image_id} json")
        if meta.id != image_id or meta.parent != (ancestries[image_id][1:2] or (None,))[0]:
            raise SyncFailed(f"{where}: image {image_id}: its json (id {meta.id}, parent {meta.parent}) "
                             "contradicts its ancestry", hint="the upstream v1 registry is inconsistent")
        with tempfile.TemporaryFile(prefix="reconciler-v1-sync-") as tmp:
            hasher = DigestHasher()
            for chunk in source.layer(image_id):
                hasher.update(chunk)
                tmp.write(chunk)
            tmp.flush()
            tmp.seek(0)
            digest = hasher.digest()
            store.blob_put(tmp, digest, size=hasher.size, where=f"{where}: image {image_id} layer")
        images.append(V1Image(image_id, raw, ancestries[image_id], digest,
                              meta.size if meta.size is not None else hasher.size))
    store.v1_images_put(images)
    return needed, len(images)


def v1_sync(store: Store, source: V1Source, repo_id: str, upstream_name: str, *,
            tags: Mapping[str, str] | None = None) -> OpResult:
    """Sync ``repo_id``'s v1 side from ``upstream_name`` (``tags``: exactly these)."""
    where = f"v1 sync {repo_id} from {upstream_name}"
    wanted = dict(tags) if tags is not None else source.tags(upstream_name)
    needed, fetched = fetch_v1_images(store, source, wanted, where=where)
    if store.repository_find(repo_id) is None:
        store.repository_create(repo_id)
    before = store.v1_version_get(repo_id)
    images = before.images | needed
    after = V1Content(images, {**before.tags, **wanted}, frozenset(before.masked - images))
    details = {"upstream_name": upstream_name, "tags": dict(sorted(wanted.items())), "images_needed": len(needed),
               "images_fetched": fetched}
    log.info("%s: %d tags, %d images needed, %d fetched", where, len(wanted), len(needed), fetched)
    return commit_v1(store, repo_id, after, operation=f"v1 sync {upstream_name}", details=details)
