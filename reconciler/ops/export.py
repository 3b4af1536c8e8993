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
``org.opencontainers.image.ref.name`` annotation), ``blobs/<alg>/<hex>`` for every blob of
the version and every tagged manifest and index with its children. OCI content keeps its
bytes and digests; Docker content is written in OCI form (ociconvert.py), since skopeo
reads only OCI types from a layout; schema1 tags are left out with a warning.

The tar is written streaming (blob files are copied from the store, never held in
memory) into a temporary file next to the target, fsynced, then renamed into place: a
crash leaves the old file (or none), never a partial one.
"""

from __future__ import annotations

import io
import json
import logging
import os
import socket
import tarfile
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from reconciler.errors import InvalidInput, ManifestInvalid
from reconciler.model import Digest, Index, parse_manifest
from reconciler.model import mediatypes as mt
from reconciler.ops.export_v1 import default_v1_url, write_crane_v1
from reconciler.ops.ociconvert import convert
from reconciler.store.protocol import RepositoryVersion, Store

log = logging.getLogger(__name__)

FORMATS = ("crane", "oci", "crane-v1")
APP_FILE_TYPE = "pulp-docker-redirect"
REF_NAME = "org.opencontainers.image.ref.name"


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
            if child is not None:
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


class _TarWriter:
    """Adds members to a tar with fixed ownership and one mtime."""

    def __init__(self, tar: tarfile.TarFile) -> None:
        self.tar = tar
        self.mtime = int(time.time())
        self.bytes = 0

    def _info(self, name: str, size: int = 0) -> tarfile.TarInfo:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode, info.uid, info.gid = size, self.mtime, 0o644, 0, 0
        return info

    def data(self, name: str, data: bytes) -> None:
        self.tar.addfile(self._info(name, len(data)), io.BytesIO(data))
        self.bytes += len(data)

    def stream(self, name: str, size: int, file: BinaryIO) -> None:
        with file:
            self.tar.addfile(self._info(name, size), file)
        self.bytes += size

    def symlink(self, name: str, target: str) -> None:
        info = self._info(name)
        info.type, info.linkname, info.mode = tarfile.SYMTYPE, target, 0o777
        self.tar.addfile(info)


def _write_crane(w: _TarWriter, store: Store, version: RepositoryVersion, *, url: str, protected: bool,
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


def _write_oci(w: _TarWriter, store: Store, version: RepositoryVersion) -> None:
    w.data("oci-layout", json.dumps({"imageLayoutVersion": "1.0.0"}).encode())
    manifests: dict[Digest, tuple[str, bytes]] = {}
    descriptors = []
    for tag, entry in sorted(version.tags.items()):
        converted = convert(*store.manifest_raw(entry.digest), store.manifest_raw, manifests)
        if converted is None:
            log.warning("tag %s of %s is a Docker schema1 manifest, which an OCI layout cannot hold; skipped",
                        tag, version.repo_id)
            continue
        media_type, raw = converted
        descriptors.append({"mediaType": media_type, "digest": str(Digest.of(raw)), "size": len(raw),
                            "annotations": {REF_NAME: tag}})
    index = {"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": descriptors}
    w.data("index.json", json.dumps(index, indent=2).encode())
    for d in sorted(version.content.blobs):
        w.stream(f"blobs/{d.algorithm}/{d.hex}", store.blob_size(d), store.blob_open(d))
    for d, (_, raw) in sorted(manifests.items()):
        w.data(f"blobs/{d.algorithm}/{d.hex}", raw)


def _umask() -> int:
    mask = os.umask(0o022)  # the only portable way to read it is to set it
    os.umask(mask)
    return mask


def export(store: Store, repo_id: str, output: str | Path, *, format: str = "crane", version: int | None = None,
           url: str | None = None) -> ExportResult:
    """Write ``repo_id`` at ``version`` (default: the published version, else the latest)
    to ``output`` as a ``crane`` or ``oci`` tar."""
    if format not in FORMATS:
        raise InvalidInput(f"unknown export format {format!r}", hint=f"use one of {', '.join(FORMATS)}")
    repo = store.repository_get(repo_id)
    number = version if version is not None else (
        repo.published_version if repo.published_version is not None else repo.latest_version)
    content = store.version_get(repo_id, number)
    registry_id = repo.publish_name or repo_id
    target = Path(output)
    directory = target.parent if str(target.parent) else Path(".")
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=directory)
    except OSError as exc:
        raise InvalidInput(f"cannot write to {directory}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as raw_out:
            # mkstemp makes the file 0600; the export is shared (a web server serves a
            # Crane tree), so give it the mode a plainly created file would have
            os.fchmod(raw_out.fileno(), 0o666 & ~_umask())
            with tarfile.open(fileobj=raw_out, mode="w", format=tarfile.PAX_FORMAT) as tar:
                writer = _TarWriter(tar)
                if format == "crane-v1":
                    v1 = write_crane_v1(writer, store, repo_id, number, url=redirect_base(url or default_v1_url(repo_id)),
                                        protected=repo.protected, registry_id=registry_id)
                elif format == "crane":
                    _write_crane(writer, store, content, url=redirect_base(url or default_url(repo_id)),
                                 protected=repo.protected, registry_id=registry_id)
                else:
                    _write_oci(writer, store, content)
            raw_out.flush()
            os.fsync(raw_out.fileno())
        os.replace(tmp_name, target)
        dir_fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except BaseException as exc:
        try:
            os.unlink(tmp_name)
        except FileNotFoundError:
            pass
        if isinstance(exc, OSError):
            raise InvalidInput(f"cannot write {target}: {exc}") from exc
        raise
    if format == "crane-v1":
        result = ExportResult(str(target), format, repo_id, number, len(v1.tags), 0, 0, writer.bytes, len(v1.images))
    else:
        result = ExportResult(str(target), format, repo_id, number, len(content.tags),
                              len(content.content.manifests) + len(content.content.indexes),
                              len(content.content.blobs), writer.bytes)
    log.info("exported %s version %d as %s to %s", repo_id, number, format, target)
    return result
