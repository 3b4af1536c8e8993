"""Crane's static tree (docs/original-system.md, "Crane app files and the static tree"),
as ``export --format crane`` writes it::

    <repo_id>.json                   Crane app file, version 4
    blobs/<digest>                   every blob of the version
    manifests/1/<digest>             Docker schema1 manifests
    manifests/2/<digest>             Docker schema2 *and OCI image* manifests
    manifests/list/<digest>          Docker manifest lists *and OCI image indexes*
    manifests/<1|2|list>/<tag>       symlink to the tagged manifest (one tag per name)
    tags/list                        {"name": <repo-registry-id>, "tags": [...]}
"""

from __future__ import annotations

import json
import socket
from collections.abc import Mapping

from reconciler.errors import ManifestInvalid
from reconciler.model import Digest, Index, parse_manifest
from reconciler.model import mediatypes as mt
from reconciler.model.repository import RepositoryVersion
from reconciler.ops.formats.tarout import TarWriter
from reconciler.store.roles.read import ReadView

APP_FILE_TYPE = "pulp-docker-redirect"


def crane_dir(media_type: str) -> str:
    """Where a manifest lives in Crane's tree: OCI manifests with schema2, OCI indexes with lists."""
    if mt.is_index(media_type):
        return "list"
    return "1" if mt.is_schema1(media_type) else "2"


def default_url(repo_id: str) -> str:
    """Pulp's default: the web directory is named by repository id, not registry name
    (docs/original-system.md, "The static tree")."""
    return f"https://{socket.getfqdn()}/pulp/docker/v2/{repo_id}/"


def redirect_base(url: str) -> str:
    """``url`` ending in ``/``: Crane appends ``manifests/...`` to it as a plain string."""
    return url if url.endswith("/") else url + "/"


def _manifests(store: ReadView, version: RepositoryVersion) -> dict[Digest, tuple[str, bytes]]:
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


def write_app_file(w: TarWriter, store: ReadView, version: RepositoryVersion, *, url: str, protected: bool,
                   registry_id: str) -> None:
    """The app file, the first member of a Crane tree (the rest: ``tarsinks.CraneSink``)."""
    app = app_file(version, _manifests(store, version), registry_id=registry_id, url=url, protected=protected)
    w.data(f"{version.repo_id}.json", json.dumps(app, indent=2).encode() + b"\n")
