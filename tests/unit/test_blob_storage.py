"""Blob storage without a server: ``open_blobs`` picks the storage for a location,
``s3://`` URLs are parsed strictly, a local folder keeps the protocol's promises, and
the grace period of ``S3Blobs.remove_stale_uploads`` (``store gc``): an incomplete
multipart upload younger than the grace may belong to a running writer and stays; an
older one is aborted. moto's server reports a fixed start time for every upload, so
those S3 answers come from botocore's Stubber with real timestamps. Everything against
a real S3 API is in tests/integration/test_s3_blobs.py."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import boto3
import pytest
from botocore.stub import Stubber

from reconciler.errors import ContentNotFound, DigestMismatch, InvalidInput
from reconciler.model import Digest
from reconciler.store.blobs import LocalBlobs, open_blobs
from reconciler.store.blobs.s3 import S3Blobs, parse_s3_url

KEY = "p/blobs/sha256/" + "ab" * 32


@pytest.fixture
def stubbed() -> Iterator[tuple[S3Blobs, Stubber]]:
    client = boto3.session.Session().client("s3", region_name="us-east-1", aws_access_key_id="x",
                                            aws_secret_access_key="x", endpoint_url="http://127.0.0.1:9")
    with Stubber(client) as stub:
        yield S3Blobs("s3://bucket/p", client=client), stub
    client.close()


@pytest.mark.parametrize("age_minutes,aborted", [(5, False), (90, True)], ids=["young-kept", "stale-aborted"])
def test_only_uploads_older_than_the_grace_are_aborted(stubbed: tuple[S3Blobs, Stubber], age_minutes: int,
                                                       aborted: bool) -> None:
    blobs, stub = stubbed
    started = datetime.now(UTC) - timedelta(minutes=age_minutes)
    stub.add_response("list_multipart_uploads", {"Uploads": [{"Key": KEY, "UploadId": "u1", "Initiated": started}]},
                      {"Bucket": "bucket", "Prefix": "p/blobs/"})
    if aborted:
        stub.add_response("list_parts", {"Parts": [{"PartNumber": 1, "Size": 5_000_000, "ETag": '"e"'}]},
                          {"Bucket": "bucket", "Key": KEY, "UploadId": "u1"})
        stub.add_response("abort_multipart_upload", {}, {"Bucket": "bucket", "Key": KEY, "UploadId": "u1"})
    assert blobs.remove_stale_uploads(3600) == ((1, 5_000_000) if aborted else (0, 0))
    stub.assert_no_pending_responses()


@pytest.mark.parametrize("url,bucket,prefix", [
    ("s3://images", "images", ""),
    ("s3://images/", "images", ""),
    ("s3://images/prod", "images", "prod/"),
    ("s3://images/a/b/", "images", "a/b/"),
], ids=["bucket-only", "trailing-slash", "prefix", "nested-prefix"])
def test_s3_url_parsing(url: str, bucket: str, prefix: str) -> None:
    assert parse_s3_url(url) == (bucket, prefix)


@pytest.mark.parametrize("url", ["s3://", "s3:///x", "s3://bad bucket/x", "images/x"],
                         ids=["empty", "no-bucket", "space", "no-scheme"])
def test_bad_s3_urls(url: str) -> None:
    with pytest.raises(InvalidInput, match="invalid blob storage URL") as exc:
        parse_s3_url(url)
    assert "s3://BUCKET" in (exc.value.hint or "")


def test_a_folder_is_local_storage(tmp_path: Path) -> None:
    blobs = open_blobs(tmp_path / "b")
    assert isinstance(blobs, LocalBlobs) and blobs.location == str(tmp_path / "b")
    data = b"hello"
    d = Digest("sha256", hashlib.sha256(data).hexdigest())
    assert blobs.size(d) is None and blobs.presigned_url(d, expires=60) is None
    with pytest.raises(ContentNotFound):
        blobs.open(d)
    assert blobs.write(iter([data]), d) == 5
    assert blobs.size(d) == 5 and blobs.path(d) == tmp_path / "b" / "blobs" / "sha256" / d.hex[:2] / d.hex
    with blobs.open(d) as f:
        assert f.read() == data
    with pytest.raises(DigestMismatch):
        blobs.write(iter([b"other"]), d)
    assert [x for x, _ in blobs.all_digests()] == [d]


def test_local_stale_temp_files_go_after_the_grace(tmp_path: Path) -> None:
    blobs = open_blobs(tmp_path)
    assert isinstance(blobs, LocalBlobs)
    old, young = blobs.tmp / "put-old", blobs.tmp / "put-young"
    old.write_bytes(b"x" * 10)
    young.write_bytes(b"y" * 3)
    os.utime(old, (time.time() - 7200, time.time() - 7200))
    assert blobs.remove_stale_uploads(3600) == (1, 10)
    assert not old.exists() and young.exists()


@pytest.mark.parametrize("spec", ["gs://bucket/x", "postgresql://db/x"], ids=["gcs", "other-scheme"])
def test_unsupported_blob_storage(spec: str) -> None:
    with pytest.raises(InvalidInput, match="unsupported blob storage"):
        open_blobs(spec)
