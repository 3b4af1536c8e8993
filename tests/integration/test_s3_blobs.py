"""Blobs in S3-compatible object storage (``--blobs s3://bucket/prefix``), against moto's
standalone S3 server on loopback: single PUT and multipart writes, verification before
anything is visible under the final key, ranged reads, presigned URLs, the embedded
store on S3 blobs (remembered location, ``store check``, ``store gc``), and the registry
server's ``--blob-redirect``."""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests

from reconciler.errors import BlobStorageError, ContentNotFound, DigestMismatch, InvalidInput, StoreError
from reconciler.model import Digest
from reconciler.model.content import ContentSet
from reconciler.server import RegistryApp
from reconciler.server.access import load_access
from reconciler.server.auth import Htpasswd
from reconciler.store.blobs import open_blobs
from reconciler.store.blobs.s3 import MIB, S3Blobs
from reconciler.store.sqlite import SQLiteStore
from tests.support.cli import RunCli
from tests.support.imagegen import build_image
from tests.support.s3server import S3Server
from tests.support.serving import commit_tags, wsgi_call

pytestmark = pytest.mark.integration


def digest_of(data: bytes) -> Digest:
    return Digest("sha256", hashlib.sha256(data).hexdigest())


def chunked(data: bytes, n: int = 256 * 1024) -> Iterator[bytes]:
    for i in range(0, len(data), n):
        yield data[i:i + n]


@pytest.fixture
def blobs(s3_env: S3Server, request: pytest.FixtureRequest) -> Iterator[S3Blobs]:
    """S3 blob storage under a fresh prefix; multipart from 1 MiB on (5 MiB parts, S3's minimum)."""
    b = S3Blobs(s3_env.bucket_url(request.node.name[:30]), multipart_threshold=1 * MIB, part_size=5 * MIB)
    yield b
    b.close()


def uploads_in_progress(s3: S3Server, b: S3Blobs) -> list[str]:
    client = s3.client()
    try:
        return [u["Key"] for u in client.list_multipart_uploads(Bucket=b.bucket, Prefix=b.prefix).get("Uploads", ())]
    finally:
        client.close()


@pytest.mark.parametrize("size", [0, 1000, 11 * MIB + 17], ids=["empty", "single-put", "multipart-3-parts"])
def test_write_then_read_back(s3_env: S3Server, blobs: S3Blobs, size: int) -> None:
    data = os.urandom(size)
    d = digest_of(data)
    assert blobs.write(chunked(data), d, size=size) == size
    assert s3_env.keys(blobs.location) == [f"{blobs.prefix}blobs/sha256/{d.hex}"]
    assert blobs.exists(d) and blobs.size(d) == size
    with blobs.open(d) as f:
        assert f.read() == data
    client = s3_env.client()
    try:
        etag = client.head_object(Bucket=blobs.bucket, Key=blobs.key(d))["ETag"]
    finally:
        client.close()
    # S3 marks an object assembled from N parts with an ETag ending in -N
    assert etag.strip('"').endswith("-3") == (size > MIB)


@pytest.mark.parametrize("size", [1000, 7 * MIB], ids=["single-put", "multipart"])
def test_wrong_digest_leaves_nothing(s3_env: S3Server, blobs: S3Blobs, size: int) -> None:
    data = os.urandom(size)
    wrong = digest_of(b"something else")
    with pytest.raises(DigestMismatch):
        blobs.write(chunked(data), wrong)
    assert s3_env.keys(blobs.location) == []
    assert uploads_in_progress(s3_env, blobs) == []  # the multipart upload was aborted
    assert not blobs.exists(wrong)


@pytest.mark.parametrize("announced", [999, 1001], ids=["longer-than-announced", "cut-short"])
def test_wrong_size_leaves_nothing(s3_env: S3Server, blobs: S3Blobs, announced: int) -> None:
    data = os.urandom(1000)
    with pytest.raises(InvalidInput, match="bytes"):
        blobs.write(chunked(data, 100), digest_of(data), size=announced)
    assert s3_env.keys(blobs.location) == []


def test_seek_reads_a_range(blobs: S3Blobs) -> None:
    data = os.urandom(3 * MIB)
    d = digest_of(data)
    blobs.write(iter([data]), d)
    with blobs.open(d) as f:
        assert f.read(10) == data[:10]
        f.seek(2 * MIB + 5)
        assert f.read(100) == data[2 * MIB + 5:2 * MIB + 105]
        f.seek(-7, os.SEEK_END)
        assert f.read() == data[-7:]


def test_missing_blob_is_content_not_found(blobs: S3Blobs) -> None:
    d = digest_of(b"never stored")
    assert blobs.size(d) is None and not blobs.exists(d)
    with pytest.raises(ContentNotFound):
        blobs.open(d)
    assert blobs.remove(d) == 0


def test_presigned_url_serves_the_bytes(blobs: S3Blobs) -> None:
    data = os.urandom(5000)
    d = digest_of(data)
    blobs.write_bytes(data, d)
    url = blobs.presigned_url(d, expires=60)
    assert url is not None and "X-Amz-Signature=" in url
    with requests.get(url, timeout=10) as resp:
        assert resp.status_code == 200 and resp.content == data
    with requests.get(url, headers={"Range": "bytes=10-19"}, timeout=10) as resp:
        assert resp.status_code == 206 and resp.content == data[10:20]


def test_stale_uploads_are_aborted_after_the_grace_period(s3_env: S3Server, blobs: S3Blobs) -> None:
    # a writer killed mid-upload leaves an incomplete multipart upload (invisible to readers)
    client = s3_env.client()
    try:
        key = f"{blobs.prefix}blobs/sha256/{'ab' * 32}"
        up = client.create_multipart_upload(Bucket=blobs.bucket, Key=key)
        client.upload_part(Bucket=blobs.bucket, Key=key, UploadId=up["UploadId"], PartNumber=1, Body=b"x" * 100)
    finally:
        client.close()
    # (moto reports every upload as started in 2010, so the grace period itself is tested
    # in tests/unit/test_s3_grace.py with the real start time S3 reports)
    assert uploads_in_progress(s3_env, blobs) == [key]
    assert blobs.remove_stale_uploads(0) == (1, 100)
    assert uploads_in_progress(s3_env, blobs) == []


def test_missing_bucket_is_a_clear_error(s3_env: S3Server) -> None:
    b = open_blobs("s3://no-such-bucket-here/x")
    try:
        with pytest.raises(BlobStorageError) as exc:
            b.write_bytes(b"data", digest_of(b"data"))
    finally:
        b.close()
    assert "NoSuchBucket" in exc.value.message and "no-such-bucket-here" in (exc.value.hint or "")


@pytest.mark.parametrize("spec", ["s3://", "s3:///prefix", "gs://bucket/x"], ids=["no-bucket", "empty-bucket", "scheme"])
def test_bad_blob_urls_are_refused(spec: str) -> None:
    with pytest.raises(InvalidInput):
        open_blobs(spec)


# -- the embedded store with blobs in S3 --------------------------------------------------------

@pytest.fixture
def s3_store(s3_env: S3Server, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "store", blobs=s3_env.bucket_url(request.node.name[:30]))
    yield s
    s.close()


def test_store_puts_blobs_in_s3_and_remembers_where(s3_env: S3Server, s3_store: SQLiteStore, tmp_path: Path) -> None:
    img = build_image("s3-store")
    commit_tags(s3_store, "r", {"v1": img})
    url = s3_store.blob_files.location
    # the blobs, and the marker that binds the prefix to this store (store/sql/identity.py)
    assert {k.rsplit("/", 1)[1] for k in s3_env.keys(url)} == {Digest.parse(d).hex for d in img.blobs} | {"store-id"}
    assert not (tmp_path / "store" / "blobs").exists() or not any((tmp_path / "store" / "blobs").rglob("*"))
    s3_store.close()
    again = SQLiteStore(tmp_path / "store")  # no blobs= : the store remembers its S3 location
    try:
        for d, data in img.blobs.items():
            assert again.blob_has(Digest.parse(d))
            with again.blob_open(Digest.parse(d)) as f:
                assert f.read() == data
        assert again.blob_path(Digest.parse(next(iter(img.blobs)))) is None  # no local file to sendfile
    finally:
        again.close()
    with pytest.raises(StoreError, match="keeps its blobs in s3://"):
        SQLiteStore(tmp_path / "store", blobs="s3://another-bucket/x")


def test_store_with_local_blobs_refuses_to_switch_to_s3(s3_env: S3Server, tmp_path: Path) -> None:
    local = SQLiteStore(tmp_path / "store")
    commit_tags(local, "r", {"v1": build_image("local")})
    local.close()
    with pytest.raises(StoreError, match="cannot switch|keeps its blobs"):
        SQLiteStore(tmp_path / "store", blobs=s3_env.bucket_url("switch"))


def test_check_finds_missing_and_corrupt_objects(s3_env: S3Server, s3_store: SQLiteStore) -> None:
    img = build_image("s3-check")
    commit_tags(s3_store, "r", {"v1": img})
    assert s3_store.check().ok
    layer, config, *_ = (Digest.parse(d) for d in sorted(img.blobs, key=lambda d: len(img.blobs[d]), reverse=True))
    blobs = s3_store.blob_files
    assert isinstance(blobs, S3Blobs)
    client = s3_env.client()
    try:
        client.delete_object(Bucket=blobs.bucket, Key=blobs.key(config))
        # same size, other bytes: only the full check (hashing) notices
        size = len(img.blobs[str(layer)])
        client.put_object(Bucket=blobs.bucket, Key=blobs.key(layer), Body=b"\0" * size)
    finally:
        client.close()
    found = {(p.kind, p.subject) for p in s3_store.check().problems}
    assert found == {("missing", str(config)), ("corrupt", str(layer))}
    assert {(p.kind, p.subject) for p in s3_store.check(verify_content=False).problems} == {("missing", str(config))}


def test_gc_deletes_only_unreferenced_objects(s3_env: S3Server, s3_store: SQLiteStore) -> None:
    keep, drop = build_image("s3-keep"), build_image("s3-drop")
    commit_tags(s3_store, "r", {"v1": keep})
    commit_tags(s3_store, "gone", {"v1": drop})
    s3_store.repository_delete("gone")
    # an object with no row at all: a writer killed between the upload and the insert
    orphan = os.urandom(100)
    s3_store.blob_files.write_bytes(orphan, digest_of(orphan))
    blobs = s3_store.blob_files
    assert isinstance(blobs, S3Blobs)
    shared = set(keep.blobs) & set(drop.blobs)
    with s3_store.lock(5):
        report = s3_store.gc()
    assert report.blobs_removed == len(set(drop.blobs) - shared) + 1
    remaining = {k.rsplit("/", 1)[1] for k in s3_env.keys(blobs.location)}
    assert remaining == {Digest.parse(d).hex for d in keep.blobs} | {"store-id"}  # the marker stays
    assert s3_store.check().ok
    v = s3_store.version_get("r")
    assert v.content.blobs == ContentSet(frozenset(Digest.parse(d) for d in keep.blobs)).blobs


# -- the registry server over S3 blobs ----------------------------------------------------------

@pytest.fixture
def published(s3_store: SQLiteStore) -> tuple[SQLiteStore, Digest, bytes]:
    img = build_image("s3-serve")
    version = commit_tags(s3_store, "r", {"v1": img})
    s3_store.publish("r", name="s3/served", version=version, protected=False)
    secret = build_image("s3-secret")
    commit_tags(s3_store, "secret", {"v1": secret})
    s3_store.publish("secret", name="s3/secret", version=1, protected=True)
    layer = max(img.blobs, key=lambda d: len(img.blobs[d]))
    return s3_store, Digest.parse(layer), img.blobs[layer]


def test_blob_get_redirects_to_a_presigned_url(published: tuple[SQLiteStore, Digest, bytes]) -> None:
    store, layer, data = published
    app = RegistryApp(lambda: store, blob_redirect=120)
    status, headers, body = wsgi_call(app, "GET", f"/v2/s3/served/blobs/{layer}")
    assert status == 307 and body == b"" and headers["Docker-Content-Digest"] == str(layer)
    assert "X-Amz-Expires=120" in headers["Location"]
    with requests.get(headers["Location"], timeout=10) as resp:
        assert resp.status_code == 200 and resp.content == data
    # HEAD stays local: size and digest from the store, no redirect
    status, headers, _ = wsgi_call(app, "HEAD", f"/v2/s3/served/blobs/{layer}")
    assert status == 200 and headers["Content-Length"] == str(len(data))


def test_redirect_only_after_the_checks(published: tuple[SQLiteStore, Digest, bytes]) -> None:
    store, layer, _ = published
    app = RegistryApp(lambda: store, blob_redirect=120)
    secret_layer = next(iter(store.version_get("secret").content.blobs))
    status, headers, _ = wsgi_call(app, "GET", f"/v2/s3/secret/blobs/{secret_layer}")
    assert status == 403 and "Location" not in headers  # protected, and this server has no user list
    # a blob of another repository is not served under this name, redirect or not
    status, headers, _ = wsgi_call(app, "GET", f"/v2/s3/served/blobs/{secret_layer}")
    assert status == 404 and "Location" not in headers


def test_redirect_only_for_a_user_the_access_rules_grant(published: tuple[SQLiteStore, Digest, bytes],
                                                         tmp_path: Path) -> None:
    """``serve --access``: the presigned URL goes only to a user granted the name; a
    valid user without the right gets the 404 of a missing name and no Location."""
    store, _, _ = published
    pw = tmp_path / "htpasswd"
    pw.write_text("".join(f"{u}:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n" for u in ("alice", "bob")))
    (tmp_path / "access.yaml").write_text("repositories:\n  s3/*: [alice]\n")
    users = Htpasswd(pw)
    app = RegistryApp(lambda: store, blob_redirect=120, htpasswd=users,
                      access=load_access(tmp_path / "access.yaml", users.users()))
    secret_layer = next(iter(store.version_get("secret").content.blobs))
    path = f"/v2/s3/secret/blobs/{secret_layer}"
    bob = "Basic " + base64.b64encode(b"bob:pw").decode()
    status, headers, body = wsgi_call(app, "GET", path, headers={"Authorization": bob})
    assert status == 404 and "Location" not in headers and b"NAME_UNKNOWN" in body
    alice = "Basic " + base64.b64encode(b"alice:pw").decode()
    status, headers, _ = wsgi_call(app, "GET", path, headers={"Authorization": alice})
    assert status == 307 and "X-Amz-Expires=120" in headers["Location"]


@pytest.mark.parametrize("range_header,status,window", [
    (None, 200, (0, None)), ("bytes=5-14", 206, (5, 15)), ("bytes=-8", 206, (-8, None)),
], ids=["whole", "range", "suffix"])
def test_without_redirect_the_server_streams_from_s3(published: tuple[SQLiteStore, Digest, bytes],
                                                     range_header: str | None, status: int,
                                                     window: tuple[int, int | None]) -> None:
    store, layer, data = published
    app = RegistryApp(lambda: store)
    got_status, _, body = wsgi_call(app, "GET", f"/v2/s3/served/blobs/{layer}",
                                    headers={"Range": range_header} if range_header else None)
    assert got_status == status and body == data[window[0]:window[1]]


def test_blob_redirect_with_local_blobs_is_a_startup_error(run_cli: RunCli, tmp_path: Path) -> None:
    run_cli("repo", "create", "r", store=tmp_path / "store", check=True)  # serve needs an existing store
    proc = run_cli("serve", "--blob-redirect", "--port", "0", store=tmp_path / "store")
    assert proc.returncode == 1
    assert "--blob-redirect needs blobs in object storage" in proc.stderr and "hint:" in proc.stderr
