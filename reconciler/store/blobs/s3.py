"""Blob storage in an S3-compatible bucket (AWS S3, MinIO, Ceph RGW): ``s3://bucket/prefix``.

Objects live at ``<prefix>/blobs/<algorithm>/<hex>`` (``<prefix>/manifests/...`` when a
store keeps its manifests there too, small markers such as ``<prefix>/store-id``). A write
hashes the stream as it goes and makes the object visible only once size and digest are
verified:

- up to ``multipart_threshold`` bytes are buffered in memory, verified, then sent with
  one ``PutObject`` to the final key (a PUT is atomic: readers see all or nothing);
- a larger blob becomes a multipart upload *to the final key*, part by part as the
  bytes arrive; S3 shows no object until ``CompleteMultipartUpload``, which is sent only
  after the digest matched. A mismatch (or any error, or Ctrl-C) aborts the upload, so a
  wrong digest leaves nothing under the final key. A writer killed outright leaves an
  incomplete upload, invisible to readers, which ``remove_stale_uploads`` (``store gc``)
  aborts after a grace period (a bucket lifecycle rule can do the same).

Connection settings come from the usual AWS variables, which boto3 reads itself:
``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY`` (or any other boto3 credential source),
``AWS_REGION``/``AWS_DEFAULT_REGION``, ``AWS_ENDPOINT_URL_S3``/``AWS_ENDPOINT_URL`` for a
server other than AWS (then path-style addressing, which MinIO and Ceph expect).
botocore's exceptions are translated here into ``BlobStorageError``/``ContentNotFound``.

How long a request may take is an ``S3Timeouts``: commands (apply, gc) wait long and retry
often (``COMMANDS``: an upload should rather succeed late); a server replica gives up
fast (``S3Timeouts.serving``, ``serve --s3-timeout/--s3-attempts``) so a stalled object
storage costs a request a few seconds, not minutes.
"""

from __future__ import annotations

import io
import logging
import os
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from reconciler.errors import BlobStorageError, ContentNotFound, DigestMismatch, InvalidInput
from reconciler.model import Digest, DigestHasher, VerifiedStream
from reconciler.store.blobs.local import Counting

log = logging.getLogger(__name__)

MIB = 1024 * 1024
#: S3's smallest part (all parts but the last); AWS, MinIO and Ceph refuse smaller ones
MIN_PART_SIZE = 5 * MIB
DEFAULT_MULTIPART_THRESHOLD = 64 * MIB
DEFAULT_PART_SIZE = 16 * MIB
_READ_CHUNK = 1024 * 1024
_NOT_FOUND = {"404", "NoSuchKey", "NotFound", "NoSuchUpload"}


def parse_s3_url(spec: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` -> (``bucket``, ``some/prefix/``); the prefix is empty or ends in ``/``."""
    rest = spec[len("s3://"):] if spec.startswith("s3://") else ""
    bucket, _, prefix = rest.partition("/")
    if not bucket or any(c in bucket for c in " ?#"):
        raise InvalidInput(f"invalid blob storage URL {spec!r}: no bucket name",
                           hint="write it as s3://BUCKET or s3://BUCKET/PREFIX")
    prefix = prefix.strip("/")
    return bucket, (prefix + "/" if prefix else "")


def endpoint_from_env() -> str | None:
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None


@dataclass(frozen=True)
class S3Timeouts:
    """Seconds to connect, seconds a read may wait for bytes (also between two chunks of
    a body), and attempts per request (1 = no retry; botocore's "standard" retries)."""

    connect: float = 60.0
    read: float = 60.0
    attempts: int = 5

    @classmethod
    def serving(cls, timeout: float = 3.0, attempts: int = 2) -> S3Timeouts:
        """A replica's: one ``timeout`` for connect and read, few attempts."""
        return cls(connect=timeout, read=timeout, attempts=max(1, attempts))


#: for commands (apply, sync, gc, check): boto3's own defaults, spelled out
COMMANDS = S3Timeouts()

_session: Any = None
_session_lock = threading.Lock()


def make_client(endpoint_url: str | None, timeouts: S3Timeouts = COMMANDS) -> Any:
    """A thread-safe S3 client (boto3 clients may be shared by threads, sessions not:
    clients are made under a lock from one session, which loads the service model once)."""
    global _session
    try:
        import boto3
        from botocore.config import Config
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise BlobStorageError("S3 blob storage needs boto3, which is not installed",
                               hint="pip install 'reconciler[s3]'") from exc
    endpoint = endpoint_url or endpoint_from_env()
    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    s3_options = {"addressing_style": "path"} if endpoint else {}
    config = Config(signature_version="s3v4", s3=s3_options, max_pool_connections=32,
                    connect_timeout=timeouts.connect, read_timeout=timeouts.read,
                    retries={"total_max_attempts": timeouts.attempts, "mode": "standard"})
    with _session_lock:
        if _session is None:
            _session = boto3.session.Session()
        return _session.client("s3", endpoint_url=endpoint, region_name=region, config=config)


class S3Blobs:
    """``BlobStorage`` in ``s3://bucket/prefix``."""

    def __init__(self, spec: str, *, endpoint_url: str | None = None,
                 multipart_threshold: int = DEFAULT_MULTIPART_THRESHOLD,
                 part_size: int = DEFAULT_PART_SIZE, client: Any = None, area: str = "blobs",
                 timeouts: S3Timeouts = COMMANDS) -> None:
        self.bucket, self.prefix = parse_s3_url(spec)
        self.location = f"s3://{self.bucket}/{self.prefix}".rstrip("/")
        if part_size < MIN_PART_SIZE:
            raise InvalidInput(f"S3 part size {part_size} is below S3's minimum of {MIN_PART_SIZE} bytes",
                               hint="use at least 5 MiB")
        self.multipart_threshold = max(multipart_threshold, 0)
        self.part_size = part_size
        self.client = client if client is not None else make_client(endpoint_url, timeouts)
        self._area = f"{self.prefix}{area}/"

    def key(self, digest: Digest) -> str:
        return f"{self._area}{digest.algorithm}/{digest.hex}"

    # -- errors --------------------------------------------------------------------------
    @contextmanager
    def _s3(self, what: str) -> Iterator[None]:
        """Translate botocore's exceptions for ``what`` (an operation and key)."""
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            yield
        except ClientError as exc:
            err = exc.response.get("Error", {})
            code = str(err.get("Code", "?"))
            if code in _NOT_FOUND:
                raise ContentNotFound(f"{what}: not found in {self.location}") from exc
            hint = {
                "NoSuchBucket": f"create the bucket {self.bucket!r} or fix the --blobs URL",
                "AccessDenied": "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY and the bucket policy",
                "InvalidAccessKeyId": "check AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY",
                "SignatureDoesNotMatch": "check AWS_SECRET_ACCESS_KEY",
            }.get(code, "check the object storage's health and AWS_ENDPOINT_URL; the command can be re-run")
            raise BlobStorageError(f"{what} in {self.location}: {code}: {err.get('Message', exc)}",
                                   hint=hint) from exc
        except BotoCoreError as exc:
            raise BlobStorageError(f"{what} in {self.location}: {exc}",
                                   hint="check AWS_ENDPOINT_URL, the network and the credentials; "
                                        "the command can be re-run") from exc

    # -- reading ---------------------------------------------------------------------------
    def path(self, digest: Digest) -> Path | None:
        return None

    def size(self, digest: Digest) -> int | None:
        try:
            with self._s3(f"HEAD {self.key(digest)}"):
                head = self.client.head_object(Bucket=self.bucket, Key=self.key(digest))
        except ContentNotFound:
            return None
        return int(head["ContentLength"])

    def exists(self, digest: Digest) -> bool:
        return self.size(digest) is not None

    def open(self, digest: Digest) -> BinaryIO:
        key = self.key(digest)
        try:
            with self._s3(f"GET {key}"):
                resp = self.client.get_object(Bucket=self.bucket, Key=key)
        except ContentNotFound:
            raise ContentNotFound(f"blob {digest} is not in {self.location}") from None
        reader = _ObjectReader(self, key, int(resp["ContentLength"]), resp["Body"])
        return cast(BinaryIO, io.BufferedReader(reader, _READ_CHUNK))

    def presigned_url(self, digest: Digest, *, expires: int) -> str | None:
        with self._s3(f"presign {self.key(digest)}"):
            return str(self.client.generate_presigned_url(
                "get_object", Params={"Bucket": self.bucket, "Key": self.key(digest)}, ExpiresIn=expires))

    def all_digests(self) -> Iterable[tuple[Digest, Path | str]]:
        for key, _size, _modified in self._list(self._area):
            algorithm, _, hex_ = key[len(self._area):].partition("/")
            try:
                yield Digest(algorithm, hex_), key
            except InvalidInput:
                continue  # not ours (a stray object under the prefix): leave it alone

    def _list(self, prefix: str) -> Iterator[tuple[str, int, float]]:
        with self._s3(f"LIST {prefix}"):
            for page in self.client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
                for obj in page.get("Contents", ()):
                    yield obj["Key"], int(obj["Size"]), obj["LastModified"].timestamp()

    # -- writing ---------------------------------------------------------------------------
    def write(self, chunks: Iterable[bytes] | BinaryIO, expected: Digest, *,
              size: int | None = None, where: str = "") -> int:
        """Stream ``chunks`` to ``expected``'s key; visible only after verification."""
        pre_verified = isinstance(chunks, VerifiedStream) and chunks.digest == expected
        if hasattr(chunks, "read"):
            stream = chunks
            chunks = iter(lambda: stream.read(_READ_CHUNK), b"")
        h: DigestHasher | Counting = Counting(expected) if pre_verified else expected.hasher()
        key = self.key(expected)
        buf = bytearray()
        upload: _Multipart | None = None
        try:
            for chunk in chunks:
                h.update(chunk)
                buf += chunk
                if size is not None and h.size > size:
                    raise InvalidInput(f"{where or expected}: more than the announced {size} bytes")
                if upload is None and len(buf) > self.multipart_threshold:
                    upload = _Multipart(self, key)
                while upload is not None and len(buf) >= self.part_size:
                    upload.send(bytes(buf[:self.part_size]))
                    del buf[:self.part_size]
            if size is not None and h.size != size:
                raise InvalidInput(f"{where or expected}: got {h.size} bytes, expected {size}",
                                   hint="the transfer was cut short or the source is corrupt; nothing was stored")
            actual = h.digest()
            if actual != expected:
                raise DigestMismatch(str(expected), str(actual), where=where)
            if upload is None:
                self._put(key, bytes(buf))
            else:
                if buf or not upload.parts:
                    upload.send(bytes(buf))
                upload.complete()
            return h.size
        except BaseException:
            if upload is not None:
                upload.abort()
            raise

    def write_bytes(self, data: bytes, digest: Digest) -> None:
        self._put(self.key(digest), data)

    def _put(self, key: str, data: bytes) -> None:
        with self._s3(f"PUT {key}"):
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, ContentType="application/octet-stream")

    def read_marker(self, name: str) -> str | None:
        key = self.prefix + name
        try:
            with self._s3(f"GET {key}"):
                body = self.client.get_object(Bucket=self.bucket, Key=key)["Body"]
                try:
                    return bytes(body.read()).decode()
                finally:
                    body.close()
        except ContentNotFound:
            return None

    def write_marker(self, name: str, text: str) -> None:
        self._put(self.prefix + name, text.encode())

    def remove(self, digest: Digest) -> int:
        size = self.size(digest)
        if size is None:
            return 0
        with self._s3(f"DELETE {self.key(digest)}"):
            self.client.delete_object(Bucket=self.bucket, Key=self.key(digest))
        return size

    def remove_stale_uploads(self, older_than: float, *, dry_run: bool = False) -> tuple[int, int]:
        """Abort incomplete multipart uploads under our prefix started before ``older_than``
        seconds ago (``dry_run``: count them only)."""
        count = freed = 0
        now = time.time()
        with self._s3(f"LIST uploads {self._area}"):
            pages = list(self.client.get_paginator("list_multipart_uploads").paginate(
                Bucket=self.bucket, Prefix=self._area))
        for page in pages:
            for up in page.get("Uploads", ()):
                if now - up["Initiated"].timestamp() <= older_than:
                    continue  # may belong to a running writer
                try:
                    with self._s3(f"ABORT upload {up['Key']}"):
                        parts = self.client.list_parts(Bucket=self.bucket, Key=up["Key"], UploadId=up["UploadId"])
                        freed += sum(int(p["Size"]) for p in parts.get("Parts", ()))
                        if not dry_run:
                            self.client.abort_multipart_upload(Bucket=self.bucket, Key=up["Key"],
                                                               UploadId=up["UploadId"])
                except ContentNotFound:
                    continue  # its writer finished or aborted meanwhile
                count += 1
        return count, freed

    def close(self) -> None:
        close = getattr(self.client, "close", None)
        if close is not None:
            close()


class _Multipart:
    """One multipart upload to the final key, completed only after verification."""

    def __init__(self, blobs: S3Blobs, key: str) -> None:
        self.blobs = blobs
        self.key = key
        self.parts: list[dict[str, Any]] = []
        with blobs._s3(f"start multipart upload {key}"):
            self.upload_id = str(blobs.client.create_multipart_upload(
                Bucket=blobs.bucket, Key=key, ContentType="application/octet-stream")["UploadId"])
        log.debug("multipart upload %s of %s started", self.upload_id, key)

    def send(self, data: bytes) -> None:
        number = len(self.parts) + 1
        with self.blobs._s3(f"upload part {number} of {self.key}"):
            resp = self.blobs.client.upload_part(Bucket=self.blobs.bucket, Key=self.key, UploadId=self.upload_id,
                                                 PartNumber=number, Body=data)
        self.parts.append({"PartNumber": number, "ETag": resp["ETag"]})

    def complete(self) -> None:
        with self.blobs._s3(f"complete multipart upload {self.key}"):
            self.blobs.client.complete_multipart_upload(
                Bucket=self.blobs.bucket, Key=self.key, UploadId=self.upload_id,
                MultipartUpload={"Parts": self.parts})

    def abort(self) -> None:
        try:
            with self.blobs._s3(f"abort multipart upload {self.key}"):
                self.blobs.client.abort_multipart_upload(Bucket=self.blobs.bucket, Key=self.key,
                                                         UploadId=self.upload_id)
        except (BlobStorageError, ContentNotFound) as exc:
            # invisible to readers either way; store gc aborts it later
            log.warning("could not abort the multipart upload of %s (store gc will): %s", self.key, exc)


class _ObjectReader(io.RawIOBase):
    """A seekable reader of one object: a seek closes the current response and the next
    read asks for a ``Range`` from the new position. It has no ``fileno`` (so a server
    streams it instead of trying ``sendfile``)."""

    def __init__(self, blobs: S3Blobs, key: str, size: int, body: Any) -> None:
        super().__init__()
        self._blobs = blobs
        self._key = key
        self._size = size
        self._body: Any = body
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        pos = max(base + offset, 0)
        if pos != self._pos:
            self._drop_body()
            self._pos = pos
        return self._pos

    def readinto(self, b: Any) -> int:
        if self._pos >= self._size:
            return 0
        view = memoryview(b).cast("B")
        with self._blobs._s3(f"GET {self._key}"):
            if self._body is None:
                resp = self._blobs.client.get_object(Bucket=self._blobs.bucket, Key=self._key,
                                                     Range=f"bytes={self._pos}-")
                self._body = resp["Body"]
            data = self._body.read(min(len(view), self._size - self._pos))
        if not data:
            raise BlobStorageError(f"GET {self._key} in {self._blobs.location}: the object ended at byte "
                                   f"{self._pos} of {self._size}", hint="run `reconciler store check`")
        view[:len(data)] = data
        self._pos += len(data)
        return len(data)

    def _drop_body(self) -> None:
        if self._body is not None:
            self._body.close()
            self._body = None

    def close(self) -> None:
        self._drop_body()
        super().close()
