"""The grace period of ``S3Blobs.remove_stale_uploads`` (``store gc``): an incomplete
multipart upload younger than the grace may belong to a running writer and stays; an
older one is aborted. moto's server reports a fixed start time for every upload, so the
S3 answers here come from botocore's Stubber with real timestamps."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import boto3
import pytest
from botocore.stub import Stubber

from reconciler.store.blobs.s3 import S3Blobs

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
