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
from reconciler.ops import upload as upload_ops
from reconciler.plan.observed import UploadInfo
from reconciler.store.protocol import ContentSet


def inspect_upload(path: Path, file_digest: str) -> tuple[UploadInfo, list[Manifest | Index]]:
    fmt, archive, raw = upload_ops.detect(path)
    try:
        parsed = upload_ops._parse(fmt, archive, raw, path)  # noqa: SLF001 - the readers, without storing
        with parsed.resources:
            content, _missing = upload_ops._needed(parsed, ContentSet())  # noqa: SLF001
            info = UploadInfo(str(path), file_digest, content, dict(parsed.tags), tuple(parsed.roots))
            return info, list(parsed.manifests)
    finally:
        if archive is not None:
            archive.close()
