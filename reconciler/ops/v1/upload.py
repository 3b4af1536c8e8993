"""``upload --v1``: a ``docker save`` tarball into a repository as Docker v1 images
(docs/original-system.md, "Uploading docker save as v1"; the reading and the ``--mask-id``
rule are in ``ops.v1.save``).

Everything is checked before anything is stored: the tar members (``tarsafe``), every
image JSON, that the tarball names one repository, and that each imported image's parent
is imported too, masked, or already in the repository. Then each layer not yet stored is
gzip'd reproducibly (the same tar gives the same layer digest) into the store, the
images are recorded, and one ``v1_commit`` makes the new version; tags from the tarball
replace same-name v1 tags.
"""

from __future__ import annotations

import logging
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import UploadInvalid
from reconciler.model import Digest, DigestHasher
from reconciler.model.content import V1Content
from reconciler.model.v1image import V1Image
from reconciler.ops.formats.archive import Archive, open_archive
from reconciler.ops.formats.dockersave import HashingWriter, gzip_layer
from reconciler.ops.formats.tarsafe import DEFAULT_LIMITS, Limits
from reconciler.ops.result import OpResult, commit_v1
from reconciler.ops.v1.save import V1Save, read_v1_save
from reconciler.store.protocol import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class V1Inspection:
    """What ``upload --v1`` of a file would import, read without storing anything."""

    repository: str | None
    images: tuple[str, ...]  # the ids imported, root first
    tags: Mapping[str, str]
    masked: str | None
    notes: tuple[str, ...] = ()


def inspect_v1(path: Path, *, mask_id: str | None = None, limits: Limits = DEFAULT_LIMITS) -> V1Inspection:
    with open_archive(Path(path), limits=limits) as archive:
        save = read_v1_save(archive, mask_id=mask_id)
    return V1Inspection(save.repository, tuple(save.selected), dict(save.tags), save.masked, tuple(save.notes))


def _store_layer(store: Store, archive: Archive, member: str) -> tuple[Digest, int]:
    """The layer gzip'd into the store (as ``docker save`` layers are): (its digest, its
    uncompressed size, counted on the inflated bytes also when it came gzip'd)."""
    with tempfile.TemporaryFile(prefix="reconciler-v1-layer-") as tmp:
        out = HashingWriter(tmp)
        uncompressed = DigestHasher("sha256")
        gzip_layer(archive, member, out, uncompressed)
        tmp.flush()
        tmp.seek(0)
        digest = out.hasher.digest()
        store.blob_put(tmp, digest, size=out.hasher.size, where=f"{archive.where}: {member}")
    return digest, uncompressed.size


def store_images(store: Store, archive_path: Path, save: V1Save, ids: list[str],
                 known: dict[str, tuple[str, ...]], *, limits: Limits = DEFAULT_LIMITS) -> tuple[int, int]:
    """Store the layers and image rows of ``ids`` not stored yet; (stored, reused)."""
    have = store.v1_images_get(ids)
    todo = [i for i in ids if i not in have]
    images: list[V1Image] = []
    with open_archive(archive_path, limits=limits) as archive:
        for image_id in todo:
            saved = save.images[image_id]
            digest, size = _store_layer(store, archive, saved.layer_member)
            images.append(V1Image(image_id, saved.raw_json, save.ancestry(image_id, known), digest,
                                  saved.meta.size if saved.meta.size is not None else size))
    store.v1_images_put(images)
    return len(todo), len(ids) - len(todo)


def upload_v1(store: Store, repo_id: str, path: Path | str, *, mask_id: str | None = None,
              limits: Limits = DEFAULT_LIMITS) -> OpResult:
    """Import the v1 images of ``path`` (a docker save tarball) into ``repo_id``
    (created if missing): one new version."""
    path = Path(path)
    with open_archive(path, limits=limits) as archive:
        save = read_v1_save(archive, mask_id=mask_id)
    repo = store.repository_find(repo_id)
    before = store.v1_version_get(repo_id) if repo else V1Content()
    masked = set(before.masked) | ({save.masked} if save.masked else set())
    selected = set(save.selected)
    lacking = sorted({p for i in save.selected if (p := save.images[i].meta.parent) is not None
                      and p not in selected and p not in masked and p not in before.images})
    if lacking:
        raise UploadInvalid(f"{path}: the parent image(s) {', '.join(lacking)} are neither in the tarball "
                            f"nor in repository {repo_id!r}",
                            hint="upload the parent images first, or give --mask-id with the parent's id "
                                 "if it is served from elsewhere")
    known = {i.id: i.ancestry for i in store.v1_images_get(before.images).values()}
    stored, reused = store_images(store, path, save, save.selected, known, limits=limits)
    if repo is None:
        store.repository_create(repo_id)
    images = before.images | selected
    after = V1Content(images, {**before.tags, **save.tags},
                      frozenset(m for m in masked if m not in images))
    details = {"format": "docker-save-v1", "file": str(path), "repository_in_file": save.repository,
               "images_in_file": len(save.images), "images": list(save.selected), "masked": save.masked,
               "tags": dict(sorted(save.tags.items())), "images_stored": stored, "images_reused": reused,
               "notes": list(save.notes), "created_repository": repo is None}
    for note in save.notes:
        log.info("%s: %s", path, note)
    return commit_v1(store, repo_id, after, operation=f"upload --v1 {path.name}", details=details)
