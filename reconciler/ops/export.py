"""Export one repository version as a tar: Crane's static tree or an OCI image layout.

``crane`` (original-system.md 10.1 and 10.3)::

    <repo_id>.json                   Crane app file, version 4
    blobs/<digest>                   every blob of the version
    manifests/1/<digest>             Docker schema1 manifests
    manifests/2/<digest>             Docker schema2 *and OCI image* manifests
    manifests/list/<digest>          Docker manifest lists *and OCI image indexes*
    manifests/<1|2|list>/<tag>       symlink to the tagged manifest (one tag per name)
    tags/list                        {"name": <repo-registry-id>, "tags": [...]}

``crane-v1``: the version's Docker v1 images, see ``export_v1``.

``oci``: ``oci-layout``, ``index.json`` (one descriptor per tag, the tag in the
``org.opencontainers.image.ref.name`` annotation), ``blobs/<alg>/<hex>``: every blob,
manifest and index of the version with its exact bytes and media type (ocilayout.py), so
every digest is kept. With ``convert_docker`` Docker content is written in OCI form
instead (ociconvert.py, new digests; schema1 tags left out with a warning), for readers
such as skopeo 1.9 that take only OCI media types from a layout's ``index.json``.

The tar is written streaming (blob files are copied from the store, never held in
memory) into a temporary file next to the target, fsynced, then renamed into place: a
crash leaves the old file (or none), never a partial one.
"""

from __future__ import annotations

import json
import logging
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from reconciler.errors import InvalidInput, ManifestInvalid
from reconciler.model import Digest, Index, parse_manifest
from reconciler.model import mediatypes as mt
from reconciler.ops.export_v1 import default_v1_url, write_crane_v1
from reconciler.ops.ociconvert import convert
from reconciler.ops.ocilayout import REF_NAME, blob_path, descriptor, write_content, write_index
from reconciler.ops.tarout import TarWriter, atomic_tar
from reconciler.store.protocol import RepositoryVersion, Store

log = logging.getLogger(__name__)

FORMATS = ("crane", "oci", "crane-v1")
APP_FILE_TYPE = "pulp-docker-redirect"


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


def crane_dir(media_type: str) -> str:
    """Where a manifest lives in Crane's tree: OCI manifests with schema2, OCI indexes with lists."""
    if mt.is_index(media_type):
        return "list"
    return "1" if mt.is_schema1(media_type) else "2"


def default_url(repo_id: str) -> str:
    """Pulp's default: the web directory is named by repository id (10.1), not registry name."""
    return f"https://{socket.getfqdn()}/pulp/docker/v2/{repo_id}/"


def redirect_base(url: str) -> str:
    """``url`` ending in ``/``: Crane appends ``manifests/...`` to it as a plain string."""
    return url if url.endswith("/") else url + "/"


def _manifests(store: Store, version: RepositoryVersion) -> dict[Digest, tuple[str, bytes]]:
    """``digest -> (media type, bytes)`` of every manifest and index of the version, read
    once: the app file and the tree both need them."""
    return {d: store.manifest_raw(d) for d in sorted(version.content.manifests | version.content.indexes)}


def app_file(version: RepositoryVersion, manifests: Mapping[Digest, tuple[str, bytes]], *, registry_id: str,
             url: str, protected: bool) -> dict[str, object]:
    """The Crane version 4 app file for one repository version (``manifests``: its
    manifests and indexes as ``_manifests`` reads them)."""
    schema2 = sorted(str(d) for d, (t, _) in manifests.items() if crane_dir(t) == "2")
    lists = sorted(str(d) for d, (t, _) in manifests.items() if crane_dir(t) == "list")
    amd64: dict[str, list[object]] = {}
    for tag, entry in sorted(version.tags.items()):
        media_type, raw = manifests[entry.digest]
        where = crane_dir(media_type)
        if where == "2":
            schema2.append(tag)
        elif where == "list":
            lists.append(tag)
            child = _amd64_child(media_type, raw)
            if child is not None and child[0] in manifests:  # not a platform the version left out
                amd64[tag] = [str(child[0]), mt.schema_version(child[1])]
    return {"type": APP_FILE_TYPE, "version": 4, "repository": version.repo_id, "repo-registry-id": registry_id,
            "url": url, "protected": protected, "schema2_data": schema2, "manifest_list_data": lists,
            "manifest_list_amd64_tags": amd64}


def _amd64_child(media_type: str, raw: bytes) -> tuple[Digest, str] | None:
    try:
        index = parse_manifest(raw, media_type)
    except ManifestInvalid:
        return None
    child = index.amd64_child() if isinstance(index, Index) else None
    return (child.digest, child.media_type) if child else None


def _write_crane(w: TarWriter, store: Store, version: RepositoryVersion, *, url: str, protected: bool,
                 registry_id: str) -> None:
    manifests = _manifests(store, version)
    app = app_file(version, manifests, registry_id=registry_id, url=url, protected=protected)
    w.data(f"{version.repo_id}.json", json.dumps(app, indent=2).encode() + b"\n")
    for d in sorted(version.content.blobs):
        w.stream(f"blobs/{d}", store.blob_size(d), store.blob_open(d))
    for d, (media_type, raw) in manifests.items():
        w.data(f"manifests/{crane_dir(media_type)}/{d}", raw)
    for tag, entry in sorted(version.tags.items()):
        # relative link in the same directory, as publish made them (10.1)
        w.symlink(f"manifests/{crane_dir(manifests[entry.digest][0])}/{tag}", str(entry.digest))
    w.data("tags/list", json.dumps({"name": registry_id, "tags": sorted(version.tags)}).encode())


def _write_oci(w: TarWriter, store: Store, version: RepositoryVersion, *, convert_docker: bool) -> None:
    """The version as an OCI layout: exact bytes, or (``convert_docker``) Docker content in
    OCI form, for readers that take only OCI media types from a layout."""
    if not convert_docker:
        write_index(w, [descriptor(*_typed(store, entry.digest), annotations={REF_NAME: tag})
                        for tag, entry in sorted(version.tags.items())])
        write_content(w, store, version.content)
        return
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


def _typed(store: Store, digest: Digest) -> tuple[str, Digest, int]:
    media_type, raw = store.manifest_raw(digest)
    return media_type, digest, len(raw)


def export(store: Store, repo_id: str, output: str | Path, *, format: str = "crane", version: int | None = None,
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
            _write_crane(writer, store, content, url=redirect_base(url or default_url(repo_id)),
                         protected=repo.protected, registry_id=registry_id)
        else:
            _write_oci(writer, store, content, convert_docker=convert_docker)
    if format == "crane-v1":
        result = ExportResult(str(target), format, repo_id, number, len(v1.tags), 0, 0, writer.bytes, len(v1.images))
    else:
        result = ExportResult(str(target), format, repo_id, number, len(content.tags),
                              len(content.content.manifests) + len(content.content.indexes),
                              len(content.content.blobs), writer.bytes)
    log.info("exported %s version %d as %s to %s", repo_id, number, format, target)
    return result
