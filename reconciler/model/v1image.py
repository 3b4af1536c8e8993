"""Docker v1 images (docs/original-system.md, "v1 images and tags"): pure values, no I/O.

A v1 image is identified by a 64-hex image id (random, not a content hash); it has an
image JSON (kept byte for byte, as served at ``/v1/images/<id>/json``), an ancestry
(its id, then its parent's, up to the root), and one layer, stored as a blob (the
gzip'd layer tar) whose digest the image records. v1 tags map a name to an image id;
they live beside the OCI tags of a repository version, in their own namespace.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from reconciler.errors import InvalidInput
from reconciler.model.digest import Digest

_IMAGE_ID = re.compile(r"^[a-f0-9]{64}$")
#: v1 tag names: the same grammar as OCI tags (the v1 registry accepted a superset)
_V1_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,127}$")


def is_image_id(text: object) -> bool:
    return isinstance(text, str) and bool(_IMAGE_ID.fullmatch(text))


def validate_image_id(text: object, *, where: str = "") -> str:
    """``text`` if it is a 64-hex v1 image id, else ``InvalidInput``."""
    if not is_image_id(text):
        at = f"{where}: " if where else ""
        raise InvalidInput(f"{at}{text!r} is not a v1 image id",
                           hint="a v1 image id is 64 lowercase hex characters (see `docker images --no-trunc`)")
    assert isinstance(text, str)
    return text


def validate_v1_tag(name: object, *, where: str = "") -> str:
    if not isinstance(name, str) or not _V1_TAG.fullmatch(name):
        at = f"{where}: " if where else ""
        raise InvalidInput(f"{at}{name!r} is not a valid v1 tag name",
                           hint="tags are [A-Za-z0-9_][A-Za-z0-9._-]{0,127}")
    return name


@dataclass(frozen=True)
class ImageJSON:
    """What a v1 image JSON says about the image: id, parent and size (if given)."""

    id: str
    parent: str | None
    size: int | None


def parse_image_json(raw: bytes, *, where: str) -> ImageJSON:
    """Read ``id``/``Id``, ``parent``/``Parent`` and ``Size`` (pulp_docker's tarutils
    accept both spellings); refuse anything that is not a JSON object with a valid id."""
    try:
        doc: Any = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidInput(f"{where}: image JSON does not parse: {exc}") from exc
    if not isinstance(doc, dict):
        raise InvalidInput(f"{where}: image JSON is not an object")
    image_id = validate_image_id(doc.get("id", doc.get("Id")), where=f"{where}: id")
    parent = doc.get("parent", doc.get("Parent")) or None
    if parent is not None:
        validate_image_id(parent, where=f"{where}: parent")
    size = doc.get("Size")
    return ImageJSON(image_id, parent, size if isinstance(size, int) and size >= 0 else None)


@dataclass(frozen=True)
class V1Image:
    """One stored v1 image. ``ancestry`` starts with ``id`` itself; ``layer`` is the
    digest of the blob holding the layer; ``size`` is the image JSON's ``Size`` or,
    when it has none, the uncompressed layer size."""

    id: str
    json: bytes
    ancestry: tuple[str, ...]
    layer: Digest
    size: int

    def __post_init__(self) -> None:
        validate_image_id(self.id)
        if not self.ancestry or self.ancestry[0] != self.id:
            raise InvalidInput(f"v1 image {self.id}: ancestry must start with the image itself")
        for a in self.ancestry:
            validate_image_id(a, where=f"v1 image {self.id} ancestry")

    @property
    def parent(self) -> str | None:
        return self.ancestry[1] if len(self.ancestry) > 1 else None
