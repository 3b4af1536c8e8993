"""Media type constants and predicates for Docker and OCI manifests, indexes and layers.

Docker calls the multi-platform object a *manifest list*; OCI calls it an *image index*.
This code base calls both an **index**.
"""

from __future__ import annotations

DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_SCHEMA2 = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"

DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
#: the empty config of artifacts (image spec 1.1): the two bytes ``{}``
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_FOREIGN_LAYER = "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_NONDISTRIBUTABLE_PREFIX = "application/vnd.oci.image.layer.nondistributable."

SCHEMA1_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
IMAGE_MANIFEST_TYPES = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA2, OCI_MANIFEST})
INDEX_TYPES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
MANIFEST_TYPES = IMAGE_MANIFEST_TYPES | INDEX_TYPES

#: the Accept header a pull client sends to get any manifest unchanged
ACCEPT_ALL = ", ".join(
    [OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_SCHEMA2, DOCKER_SCHEMA1_SIGNED, DOCKER_SCHEMA1]
)


def is_index(media_type: str) -> bool:
    return media_type in INDEX_TYPES


def is_manifest(media_type: str) -> bool:
    """Any manifest type we store: image manifests and indexes."""
    return media_type in MANIFEST_TYPES


def is_schema1(media_type: str) -> bool:
    return media_type in SCHEMA1_TYPES


def is_foreign_layer(media_type: str | None) -> bool:
    """Foreign (Docker) or non-distributable (OCI) layers: recorded, never downloaded."""
    if not media_type:
        return False
    return media_type == DOCKER_FOREIGN_LAYER or media_type.startswith(OCI_NONDISTRIBUTABLE_PREFIX)


def schema_version(media_type: str) -> int:
    """1 for Docker schema1, 2 for everything else (as the manifests themselves say)."""
    return 1 if is_schema1(media_type) else 2
