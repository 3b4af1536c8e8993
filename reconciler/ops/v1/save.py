"""Read a ``docker save`` tarball as Docker v1 images (docs/original-system.md, "Uploading
docker save as v1").

Both layouts are read: the legacy one (``repositories`` + ``<id>/{VERSION,json,layer.tar}``)
and the one Docker 1.10-24 wrote, which adds ``manifest.json`` and ``<sha>.json``
configs but keeps the per-image directories. Every member named ``json`` in a directory
is an image JSON (id from ``id``/``Id``, parent from ``parent``/``Parent``); tags come from
``repositories`` (exactly one repository), else from ``manifest.json``'s ``RepoTags``.

Which images are imported is pulp_docker's rule: from every leaf (an image nobody names
as parent) walk up the parent chain adding each image not seen yet, and stop after an
image whose parent is ``mask_id``, so the masked image and all its ancestors are skipped
(a five-image chain masked at the third imports two).
"""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field
from typing import Any

from reconciler.errors import InvalidInput, UploadInvalid
from reconciler.model.v1image import ImageJSON, parse_image_json, validate_image_id, validate_v1_tag
from reconciler.ops.formats.archive import Archive
from reconciler.ops.formats.tarsafe import check_member_name

_HINT = "upload a tarball made by `docker save NAME` (Docker 24 or older writes the v1 image directories)"


@dataclass(frozen=True)
class SavedImage:
    """One image of the tarball: its JSON as stored, parsed fields, and its layer member."""

    meta: ImageJSON
    raw_json: bytes
    layer_member: str


@dataclass
class V1Save:
    """What the tarball holds and what an upload with ``mask_id`` imports."""

    repository: str | None
    images: dict[str, SavedImage]
    tags: dict[str, str]
    selected: list[str] = field(default_factory=list)  # root first within each chain
    masked: str | None = None  # the mask id, when some selected image's parent is it
    notes: list[str] = field(default_factory=list)

    def ancestry(self, image_id: str, known: dict[str, tuple[str, ...]] | None = None) -> tuple[str, ...]:
        """``image_id`` then its parents as far as the tarball (or ``known``) tells."""
        out = [image_id]
        current = self.images[image_id].meta.parent
        while current is not None and current not in out:
            if current in self.images:
                out.append(current)
                current = self.images[current].meta.parent
            elif known and current in known:
                out.extend(a for a in known[current] if a not in out)
                break
            else:
                out.append(current)
                break
        return tuple(out)


def read_v1_save(archive: Archive, *, mask_id: str | None = None) -> V1Save:
    if mask_id is not None:
        validate_image_id(mask_id, where="--mask-id")
    images: dict[str, SavedImage] = {}
    for name in archive.names():
        if posixpath.basename(name) != "json" or posixpath.dirname(name) == "":
            continue
        where = f"{archive.where}: {name}"
        raw = archive.read_bytes(name)  # once: in a .tar.gz each read inflates from the start
        try:
            meta = parse_image_json(raw, where=where)
        except InvalidInput as exc:
            raise UploadInvalid(str(exc), hint=_HINT) from exc
        layer = check_member_name(posixpath.join(posixpath.dirname(name), "layer.tar"), where=where)
        if not archive.has(layer):
            raise UploadInvalid(f"{where}: image {meta.id} has no layer.tar beside its json", hint=_HINT)
        images[meta.id] = SavedImage(meta, raw, layer)
    if not images:
        raise UploadInvalid(f"{archive.where}: no v1 image directories (<id>/json, <id>/layer.tar)",
                            hint=_HINT + "; or upload it without --v1 as a v2 image")
    repository, tags = _tags(archive, images)
    save = V1Save(repository, images, tags)
    _select(save, mask_id)
    return save


def _tags(archive: Archive, images: dict[str, SavedImage]) -> tuple[str | None, dict[str, str]]:
    if archive.has("repositories"):
        doc = archive.read_json("repositories")
        if not isinstance(doc, dict) or len(doc) > 1:
            raise UploadInvalid(f"{archive.where}: repositories must name exactly one repository "
                                f"(only one repo per tarfile), found {len(doc) if isinstance(doc, dict) else doc!r}",
                                hint="save one repository per tarball: docker save NAME > NAME.tar")
        if not doc:
            return None, {}
        [(repo, tag_map)] = doc.items()
        if not isinstance(tag_map, dict):
            raise UploadInvalid(f"{archive.where}: repositories[{repo!r}] is not an object of tag -> image id")
        return str(repo), {validate_v1_tag(t, where=f"{archive.where}: repositories"): _known(images, i, archive.where)
                           for t, i in tag_map.items()}
    if archive.has("manifest.json"):
        return _tags_from_manifest(archive, archive.read_json("manifest.json"), images)
    return None, {}


def _known(images: dict[str, SavedImage], image_id: object, where: str) -> str:
    validate_image_id(image_id, where=f"{where}: tag target")
    assert isinstance(image_id, str)
    if image_id not in images:
        raise UploadInvalid(f"{where}: a tag points at image {image_id}, which the tarball does not hold", hint=_HINT)
    return image_id


def _tags_from_manifest(archive: Archive, entries: Any, images: dict[str, SavedImage]) -> tuple[str | None, dict[str, str]]:
    repos: set[str] = set()
    tags: dict[str, str] = {}
    for i, entry in enumerate(entries if isinstance(entries, list) else []):
        layers = entry.get("Layers") if isinstance(entry, dict) else None
        if not isinstance(layers, list) or not layers or not isinstance(layers[-1], str):
            continue
        top = _known(images, posixpath.dirname(layers[-1]), f"{archive.where}: manifest.json[{i}]")
        for repo_tag in entry.get("RepoTags") or ():
            if isinstance(repo_tag, str) and ":" in repo_tag.rsplit("/", 1)[-1]:
                repo, _, tag = repo_tag.rpartition(":")
                repos.add(repo)
                tags[validate_v1_tag(tag, where=f"{archive.where}: manifest.json[{i}]")] = top
    if len(repos) > 1:
        raise UploadInvalid(f"{archive.where}: the images are tagged in {len(repos)} repositories "
                            f"({', '.join(sorted(repos))}); only one repo per tarfile",
                            hint="save one repository per tarball: docker save NAME > NAME.tar")
    return (repos.pop() if repos else None), tags


def _select(save: V1Save, mask_id: str | None) -> None:
    parents = {img.meta.parent for img in save.images.values()}
    leaves = sorted(i for i in save.images if i not in parents)
    seen: set[str] = set()
    for leaf in leaves:
        chain: list[str] = []
        current: str | None = leaf
        while current is not None and current in save.images and current not in seen:
            seen.add(current)
            chain.append(current)
            parent = save.images[current].meta.parent
            if parent is not None and parent == mask_id:
                save.masked = mask_id
                break
            current = parent
        save.selected.extend(reversed(chain))
    if mask_id is not None and save.masked is None:
        save.notes.append(f"--mask-id {mask_id} is no image's parent in the tarball; nothing was masked")
    dropped = sorted(t for t, i in save.tags.items() if i not in seen)
    for t in dropped:
        save.notes.append(f"tag {t} points at masked image {save.tags.pop(t)}; not imported")
