"""What an upload file would add, learned without importing it (for the plan).

Reads the file with the ops upload readers (same format detection, same manifests and
digests an import produces, docker-save layers compressed into temporary files), stores
nothing, and returns the content closure, the top-level manifests and the file's tags.
A file whose images need content from the repository itself (an index JSON listing
manifests already there) reports its own part; the diff adds it on top of the state.
"""

from __future__ import annotations

from pathlib import Path

from reconciler.model import Index, Manifest
from reconciler.ops.upload import inspect_upload
from reconciler.plan.observed import UploadInfo


def upload_info(path: Path, file_digest: str) -> tuple[UploadInfo, list[Manifest | Index]]:
    """``ops.upload.inspect_upload`` of ``path``, as the diff's ``UploadInfo`` (with the
    file's sha256 ``file_digest``) and the manifests it holds."""
    found = inspect_upload(path)
    info = UploadInfo(str(path), file_digest, found.content, dict(found.tags), found.roots)
    return info, list(found.manifests)
