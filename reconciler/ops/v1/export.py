"""``export --format crane-v1``: a repository version's Docker v1 images as Pulp's v1
export distributor wrote them (docs/original-system.md, "The v1 export")::

    <repo_id>.json                   Crane app file, version 1
    web/<image_id>/ancestry          JSON list: the image id, then its parents' to the root
    web/<image_id>/json              the image JSON, byte for byte
    web/<image_id>/layer             the layer (gzip'd tar)

The app file has the common keys plus ``images`` (``[{"id": ...}]``) and ``tags``
(``{tag: image_id}``). Unpack the tar, point Crane's ``data_dir`` at the JSON file and
serve ``web/`` at the ``url`` it names.
"""

from __future__ import annotations

import json
import socket
from typing import BinaryIO, Protocol

from reconciler.errors import InvalidInput
from reconciler.model.content import V1Content
from reconciler.store.roles.read import ReadView


class _Writer(Protocol):
    def data(self, name: str, data: bytes) -> None: ...
    def stream(self, name: str, size: int, file: BinaryIO) -> None: ...


def default_v1_url(repo_id: str) -> str:
    """Pulp's default v1 web directory (``/pulp/docker/v1/<repo_id>/``)."""
    return f"https://{socket.getfqdn()}/pulp/docker/v1/{repo_id}/"


def v1_app_file(repo_id: str, content: V1Content, *, registry_id: str, url: str, protected: bool) -> dict[str, object]:
    return {"type": "pulp-docker-redirect", "version": 1, "repository": repo_id, "repo-registry-id": registry_id,
            "url": url, "protected": protected, "images": [{"id": i} for i in sorted(content.images)],
            "tags": dict(sorted(content.tags.items()))}


def write_crane_v1(w: _Writer, store: ReadView, repo_id: str, number: int, *, url: str, protected: bool,
                   registry_id: str) -> V1Content:
    content = store.v1_version_get(repo_id, number)
    if not content.images:
        raise InvalidInput(f"repository {repo_id!r} version {number} holds no v1 images",
                           hint="upload a docker save tarball with `reconciler upload REPO FILE --v1`, "
                                "or export with --format crane")
    app = v1_app_file(repo_id, content, registry_id=registry_id, url=url, protected=protected)
    w.data(f"{repo_id}.json", json.dumps(app, indent=2).encode() + b"\n")
    for image_id, image in sorted(store.v1_images_get(content.images).items()):
        w.data(f"web/{image_id}/ancestry", json.dumps(list(image.ancestry)).encode())
        w.data(f"web/{image_id}/json", image.json)
        w.stream(f"web/{image_id}/layer", store.blob_size(image.layer), store.blob_open(image.layer))
    return content
