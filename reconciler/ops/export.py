"""Export one repository version as a tar: Crane's static tree or an OCI image layout.

``crane`` (docs/original-system.md, "Crane app files and the static tree"): Crane's static
tree, an app file, blobs and manifests by digest, tag symlinks (``ops.formats.crane``).

``crane-v1``: the version's Docker v1 images, see ``ops.v1.export``.

``oci``: ``oci-layout``, ``index.json`` (one descriptor per tag, the tag in the
``org.opencontainers.image.ref.name`` annotation), ``blobs/<alg>/<hex>``: every blob,
manifest and index of the version with its exact bytes and media type (``ops.formats.ocilayout``), so
every digest is kept. With ``convert_docker`` Docker content is written in OCI form
instead (``ops.formats.ociconvert``, new digests; schema1 tags left out with a warning), for readers
such as skopeo 1.9 that take only OCI media types from a layout's ``index.json``.

The content moves through the one transfer walk (``ops.transfer``) from the store
version (``StoreSource``) into an export writer (``ops.formats.tarsinks``). The tar is
written streaming (blob files are copied from the store, never held in memory) into a temporary file next to the target, fsynced, then renamed into place: a
crash leaves the old file (or none), never a partial one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import InvalidInput
from reconciler.model.repository import RepositoryVersion
from reconciler.ops.formats.crane import default_url, redirect_base, write_app_file
from reconciler.ops.formats.ocilayout import write_converted, write_version_index
from reconciler.ops.formats.tarout import atomic_tar
from reconciler.ops.formats.tarsinks import CraneSink, LayoutSink, TarSink
from reconciler.ops.transfer.adapters import StoreSource
from reconciler.ops.transfer.walk import TransferPolicy, transfer
from reconciler.ops.v1.export import default_v1_url, write_crane_v1
from reconciler.store.roles.read import ReadView

log = logging.getLogger(__name__)

FORMATS = ("crane", "oci", "crane-v1")


@dataclass(frozen=True)
class ExportResult:
    path: str
    format: str
    repo_id: str
    version: int
    tags: int
    manifests: int
    blobs: int
    bytes: int
    v1_images: int = 0

    def to_json(self) -> dict[str, object]:
        return dict(self.__dict__)


def export(store: ReadView, repo_id: str, output: str | Path, *, format: str = "crane", version: int | None = None,
           url: str | None = None, convert_docker: bool = False) -> ExportResult:
    """Write ``repo_id`` at ``version`` (default: the published version, else the latest)
    to ``output`` as a ``crane``, ``crane-v1`` or ``oci`` tar (``convert_docker``: Docker
    manifests in OCI form, new digests)."""
    if format not in FORMATS:
        raise InvalidInput(f"unknown export format {format!r}", hint=f"use one of {', '.join(FORMATS)}")
    repo = store.repository_get(repo_id)
    number = version if version is not None else (
        repo.published_version if repo.published_version is not None else repo.latest_version)
    content = store.version_get(repo_id, number)
    registry_id = repo.publish_name or repo_id
    if convert_docker and format != "oci":
        raise InvalidInput("--convert-docker applies to --format oci only")
    target = Path(output)
    with atomic_tar(target) as writer:
        if format == "crane-v1":
            v1 = write_crane_v1(writer, store, repo_id, number, url=redirect_base(url or default_v1_url(repo_id)),
                                protected=repo.protected, registry_id=registry_id)
        elif format == "crane":
            write_app_file(writer, store, content, url=redirect_base(url or default_url(repo_id)),
                           protected=repo.protected, registry_id=registry_id)
            _transfer(store, content, CraneSink(writer, content, registry_id=registry_id))
        elif convert_docker:
            write_converted(writer, store, content)
        else:
            write_version_index(writer, store, content)
            _transfer(store, content, LayoutSink(writer))
    if format == "crane-v1":
        result = ExportResult(str(target), format, repo_id, number, len(v1.tags), 0, 0, writer.bytes, len(v1.images))
    else:
        result = ExportResult(str(target), format, repo_id, number, len(content.tags),
                              len(content.content.manifests) + len(content.content.indexes),
                              len(content.content.blobs), writer.bytes)
    log.info("exported %s version %d as %s to %s", repo_id, number, format, target)
    return result


def _transfer(store: ReadView, version: RepositoryVersion, sink: TarSink) -> None:
    """The version's content into ``sink``: every manifest and index is a root (a version
    may hold untagged ones), one blob at a time (a tar has one write position); an index's
    children of platforms the version does not hold are not followed (its bytes list them)."""
    roots = sorted(version.content.manifests | version.content.indexes)
    source = StoreSource.of_version(store, version)
    transfer(source, sink, roots, policy=source.policy(TransferPolicy(jobs=1)))
    sink.commit()
