"""The pieces of an OCI image layout that the OCI export and bundles share.

A layout (image-spec ``image-layout.md``) is ``oci-layout``, ``index.json`` and
``blobs/<algorithm>/<hex>``. Any content may live under ``blobs/`` byte for byte,
whatever its media type: Docker schema2 manifests and manifest lists, even schema1, keep
their exact bytes and so their digests, which is what signatures and digest pins need.
``write_version_index`` starts one repository version as a layout (``export --format oci``;
its content follows through ``tarsinks.LayoutSink``), ``write_converted`` writes one in OCI form.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping

from reconciler.model import Digest
from reconciler.model import mediatypes as mt
from reconciler.model.repository import RepositoryVersion
from reconciler.ops.formats.ociconvert import convert
from reconciler.ops.formats.tarout import TarWriter
from reconciler.store.roles.read import ReadView

LAYOUT_FILE = "oci-layout"
LAYOUT_VERSION = {"imageLayoutVersion": "1.0.0"}
REF_NAME = "org.opencontainers.image.ref.name"

log = logging.getLogger(__name__)


def blob_path(digest: Digest) -> str:
    return f"blobs/{digest.algorithm}/{digest.hex}"


def descriptor(media_type: str, digest: Digest, size: int,
               annotations: Mapping[str, str] | None = None) -> dict[str, object]:
    out: dict[str, object] = {"mediaType": media_type, "digest": str(digest), "size": size}
    if annotations:
        out["annotations"] = dict(annotations)
    return out


def index_bytes(descriptors: list[dict[str, object]]) -> bytes:
    """The ``index.json`` of a layout whose index lists ``descriptors``."""
    return json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}, indent=2).encode()


def write_index(w: TarWriter, descriptors: list[dict[str, object]], *, index: bytes | None = None) -> None:
    """``oci-layout`` and ``index.json`` over ``descriptors`` (or the bytes ``index``)."""
    w.data(LAYOUT_FILE, json.dumps(LAYOUT_VERSION).encode())
    w.data("index.json", index if index is not None else index_bytes(descriptors))


def write_version_index(w: TarWriter, store: ReadView, version: RepositoryVersion) -> None:
    """``oci-layout`` and ``index.json`` of the version with every digest kept (one
    descriptor per tag); its content follows through ``tarsinks.LayoutSink``."""
    write_index(w, [descriptor(*_typed(store, entry.digest), annotations={REF_NAME: tag})
                    for tag, entry in sorted(version.tags.items())])


def write_converted(w: TarWriter, store: ReadView, version: RepositoryVersion) -> None:
    """The version as an OCI layout with Docker content in OCI form (new digests), for
    readers that take only OCI media types from a layout. Not a transfer: the manifests
    written are made here, not moved."""
    manifests: dict[Digest, tuple[str, bytes]] = {}
    descriptors = []
    for tag, entry in sorted(version.tags.items()):
        converted = convert(*store.manifest_raw(entry.digest), store.manifest_raw, manifests, version.absent)
        if converted is None:
            log.warning("tag %s of %s is a Docker schema1 manifest, which has no OCI form; skipped",
                        tag, version.repo_id)
            continue
        media_type, raw = converted
        descriptors.append(descriptor(media_type, Digest.of(raw), len(raw), {REF_NAME: tag}))
    write_index(w, descriptors)
    for d in sorted(version.content.blobs):
        w.stream(blob_path(d), store.blob_size(d), store.blob_open(d))
    for d, (_, raw) in sorted(manifests.items()):
        w.data(blob_path(d), raw)


def _typed(store: ReadView, digest: Digest) -> tuple[str, Digest, int]:
    media_type, raw = store.manifest_raw(digest)
    return media_type, digest, len(raw)
