"""Where content bytes live: ``open_blobs(spec)`` picks the storage for a location.

A folder path gives ``LocalBlobs`` (``<folder>/blobs/...``, temporary files in
``<folder>/tmp``); ``s3://bucket/prefix`` gives ``S3Blobs`` (boto3 is imported only then).
Every store backend builds its blob storage with this one call.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.errors import InvalidInput
from reconciler.store.blobs.local import ContentFiles, LocalBlobs
from reconciler.store.blobs.protocol import BlobStorage

if TYPE_CHECKING:
    from reconciler.store.blobs.s3 import S3Timeouts

__all__ = ["BlobStorage", "ContentFiles", "LocalBlobs", "is_remote", "open_blobs"]

#: multipart settings for S3, in bytes (tests and tuning); the defaults suit AWS
THRESHOLD_ENV = "RECONCILER_S3_MULTIPART_THRESHOLD"
PART_SIZE_ENV = "RECONCILER_S3_PART_SIZE"


def is_remote(spec: str) -> bool:
    return spec.startswith("s3://")


def open_blobs(spec: str | Path, *, durable: bool = True, endpoint_url: str | None = None,
               area: str = "blobs", timeouts: S3Timeouts | None = None) -> BlobStorage:
    """The blob storage at ``spec``: a folder path, or ``s3://bucket/prefix``. ``area`` is
    the subfolder or key prefix under it (``manifests`` for a store that keeps its
    manifest bytes beside the blobs). ``timeouts``: of each S3 request (default: a
    command's, ``s3.COMMANDS``)."""
    text = str(spec)
    if is_remote(text):
        from reconciler.store.blobs import s3

        return s3.S3Blobs(text, endpoint_url=endpoint_url,
                          multipart_threshold=_env_bytes(THRESHOLD_ENV, s3.DEFAULT_MULTIPART_THRESHOLD),
                          part_size=_env_bytes(PART_SIZE_ENV, s3.DEFAULT_PART_SIZE), area=area,
                          timeouts=timeouts or s3.COMMANDS)
    if "://" in text:
        raise InvalidInput(f"unsupported blob storage {text!r}",
                           hint="give a folder path or s3://BUCKET/PREFIX")
    return LocalBlobs(Path(text).absolute(), area, durable=durable)


def _env_bytes(name: str, default: int) -> int:
    value = os.environ.get(name)
    if not value:
        return default
    try:
        return int(value)
    except ValueError:
        raise InvalidInput(f"{name}={value!r} is not a number of bytes", hint=f"e.g. {name}={default}") from None
