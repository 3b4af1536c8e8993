"""``PushClient``: the push side of the OCI distribution spec ("Pushing blobs", "Pushing
manifests", "Deleting"), a ``RegistryClient`` that also implements ``PushTarget``.

::

    client = PushClient(RegistryConfig("https://harbor.example.com"))
    if not client.blob_exists("team/app", d):
        client.blob_upload("team/app", d, chunks, size)      # POST, then PUT or PATCHes + PUT
    client.manifest_put("team/app", str(m.digest), m)       # children before indexes
    client.manifest_put("team/app", "1.2.5", m)             # then the tag

How blobs go up:

* small ones (up to ``chunk_threshold``, 8 MiB) are held in memory and sent with one
  monolithic ``PUT <location>?digest=``: a temporary failure simply sends them again
  (a new upload session);
* larger ones in ``PATCH`` chunks of ``chunk_size`` with ``Content-Range``, then a closing
  ``PUT ?digest=``; only the current chunk is in memory. A chunk that fails is resumed:
  ``GET <location>`` asks the registry how much it has (``Range: 0-N``) and the rest of
  the chunk is sent from there. A registry that cannot say (distribution 2.x: its
  ``_state`` moved on with the answer we lost) fails the upload as temporary: the push
  (``ops.push``) then walks again, and this blob is read and sent again from its start;
* ``POST ?mount=<digest>&from=<name>`` mounts a blob another repository of the same
  registry holds (201: nothing to send; 202: the registry would not, and the session it
  opened is cancelled).

Every answer that names a digest (``Docker-Content-Digest``) must name the one we sent.
Requests ask for Bearer scope ``repository:NAME:push,pull`` (a mount also
``repository:FROM:pull``); counted in ``stats`` as ``blob_head``, ``upload_start``,
``upload_put``, ``upload_patch``, ``upload_status``, ``mount``, ``manifest_put``,
``manifest_head``, ``manifest_delete``. Temporary failures are retried with the
client's ``RetryPolicy`` (sync's).

Deleting a tag: ``DELETE /v2/NAME/manifests/TAG`` where the registry supports it;
distribution 2.x refuses it (deleting by digest would also drop every other tag on that
manifest), so the tag is first pointed at a tiny throwaway manifest of its own, which is
then deleted by digest: only that tag goes (what regclient does).
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterator
from urllib.parse import urlencode, urljoin, urlsplit

import requests

from reconciler.errors import DigestInvalid, DigestMismatch, RegistryError
from reconciler.model import Digest, Index, Manifest
from reconciler.model.mediatypes import ACCEPT_ALL
from reconciler.model.reference import normalize_upstream_name
from reconciler.model.registry import RegistryConfig
from reconciler.registry.auth import repository_scope
from reconciler.registry.client import RegistryClient
from reconciler.registry.protocol import UploadLost
from reconciler.registry.retry import RetryPolicy
from reconciler.registry.transport import released

log = logging.getLogger(__name__)

#: blobs up to this size go in one monolithic PUT (held in memory, resent whole on failure),
#: larger ones in PATCH chunks of this size; ``RECONCILER_PUSH_CHUNK`` (bytes) sets both
CHUNK_SIZE = int(os.environ.get("RECONCILER_PUSH_CHUNK") or 8 * 1024 * 1024)
CHUNK_THRESHOLD = CHUNK_SIZE
_OCTETS = "application/octet-stream"
#: the empty JSON object, the config of the throwaway manifest a tag deletion points the tag at
_EMPTY = b"{}"
_EMPTY_CONFIG = "application/vnd.oci.empty.v1+json"


class PushClient(RegistryClient):
    """A ``RegistryClient`` (pull side, used by the plan's HEADs) that also pushes."""

    def __init__(self, config: RegistryConfig, *, retry: RetryPolicy | None = None,
                 chunk_threshold: int = CHUNK_THRESHOLD, chunk_size: int = CHUNK_SIZE,
                 timeout: tuple[float, float] | None = None) -> None:
        super().__init__(config, retry=retry, timeout=timeout)
        self.chunk_threshold, self.push_chunk = chunk_threshold, max(1, chunk_size)
        #: (name, blob) -> whether the target holds it, as this client last heard or made it
        #: so: the plan's HEADs (``apply -f`` and ``push`` plan and apply with one client)
        #: are not sent again by the walk. A blob that went away in between fails the
        #: manifest PUT (the registry checks its references), so no tag moves; re-run.
        self._blobs: dict[tuple[str, Digest], bool] = {}

    def _push_url(self, name: str, tail: str) -> tuple[str, str]:
        name = normalize_upstream_name(self.base, name)
        return f"{self.base}/v2/{name}/{tail}", repository_scope(name, "push,pull")

    def _location(self, resp: requests.Response, url: str) -> str:
        location = resp.headers.get("Location")
        if not location:
            raise RegistryError("POST", url, resp.status_code, temporary=False,
                                detail="upload session answered without a Location")
        target = urljoin(url, location)
        there, home = urlsplit(target), urlsplit(self.base)
        if (there.scheme, there.netloc.lower()) != (home.scheme, home.netloc.lower()):
            # our credentials go only to the registry, and never in clear text
            raise RegistryError("POST", url, resp.status_code, temporary=False,
                                detail=f"the upload location is not on the registry ({there.scheme}://{there.netloc})",
                                hint="the registry (or a proxy in front of it) builds upload URLs for another "
                                     "host or scheme; fix its external URL setting")
        return target

    def _check_digest(self, method: str, url: str, resp: requests.Response, expected: Digest) -> None:
        header = resp.headers.get("Docker-Content-Digest")
        if not header:
            return  # optional for some registries; the registry verified ?digest= itself
        try:
            got = Digest.parse(header.strip())
        except DigestInvalid:
            log.warning("%s %s: ignoring invalid Docker-Content-Digest %r", method, url, header)
            return
        if got != expected:
            raise DigestMismatch(str(expected), str(got), where=f"{method} {url}")

    # -- blobs ---------------------------------------------------------------------------
    def _blob_exists(self, name: str, digest: Digest) -> bool:
        url, scope = self._push_url(name, f"blobs/{digest}")

        def attempt() -> bool:
            resp = self._send("HEAD", url, kind="blob_head", scope=scope)
            with released(resp):
                if resp.status_code == 200:
                    return True
                if resp.status_code == 404:
                    return False
                raise self._error("HEAD", url, resp)

        held = self._retry(attempt, f"HEAD {url}")
        self._blobs[(name, digest)] = held
        return held

    def _blob_mount(self, name: str, digest: Digest, from_name: str) -> bool:
        url, scope = self._push_url(name, "blobs/uploads/")
        source = normalize_upstream_name(self.base, from_name)
        query = f"{url}?{urlencode({'mount': str(digest), 'from': source})}"
        scope = f"{scope} {repository_scope(source)}"

        def attempt() -> bool:
            resp = self._send("POST", query, kind="mount", scope=scope, headers={"Content-Length": "0"})
            with released(resp):
                if resp.status_code == 201:
                    self._check_digest("POST", url, resp, digest)
                    return True
                if resp.status_code == 202:  # not mounted: an upload session we do not use
                    self._cancel(self._location(resp, url), scope)
                    return False
                raise self._error("POST", url, resp)

        mounted = self._retry(attempt, f"POST {url}")
        if mounted:
            self._blobs[(name, digest)] = True
        return mounted

    def _cancel(self, location: str, scope: str) -> None:
        try:
            resp = self._send("DELETE", location, kind="upload_cancel", scope=scope)
            resp.close()
        except RegistryError as exc:  # the registry expires abandoned sessions anyway
            log.debug("cancelling upload %s failed: %s", location, exc)

    def _start(self, name: str) -> tuple[str, str]:
        url, scope = self._push_url(name, "blobs/uploads/")

        def attempt() -> str:
            resp = self._send("POST", url, kind="upload_start", scope=scope, headers={"Content-Length": "0"})
            with released(resp):
                if resp.status_code != 202:
                    raise self._error("POST", url, resp)
                return self._location(resp, url)

        return self._retry(attempt, f"POST {url}"), scope

    def _blob_upload(self, name: str, digest: Digest, chunks: Iterator[bytes], size: int | None) -> int:
        if size is not None and size <= self.chunk_threshold:
            data = b"".join(chunks)  # (the walk's check raises here when the bytes are wrong)
            self._retry(lambda: self._monolithic(name, digest, data), f"upload {digest} to {name}")
            sent = len(data)
        else:
            sent = self._chunked(name, digest, chunks)
        self._blobs[(name, digest)] = True
        return sent

    def _monolithic(self, name: str, digest: Digest, data: bytes) -> None:
        location, scope = self._start(name)
        url = _with_digest(location, digest)
        resp = self._send("PUT", url, kind="upload_put", scope=scope, data=data,
                          headers={"Content-Type": _OCTETS, "Content-Length": str(len(data))})
        with released(resp):
            if resp.status_code != 201:
                raise self._error("PUT", location, resp)
            self._check_digest("PUT", location, resp, digest)

    def _chunked(self, name: str, digest: Digest, chunks: Iterator[bytes]) -> int:
        location, scope = self._start(name)
        sent = 0
        buffer = bytearray()

        def flush(part: bytes) -> None:
            nonlocal location, sent
            offset = 0  # of ``part`` acknowledged by the registry
            attempts = 0
            while offset < len(part):
                body = part[offset:]
                try:
                    location = self._patch(location, scope, body, sent + offset)
                    offset = len(part)
                except RegistryError as exc:
                    attempts += 1
                    if not exc.temporary or attempts >= self.retry.attempts:
                        raise
                    self.retry.sleep(self.retry.wait_for(attempts, exc))
                    have = self._status(location, scope)  # how much of the upload the registry holds
                    if have is None or have < sent:
                        # (distribution 2.x: the session's state moved on with the lost answer)
                        raise UploadLost("PATCH", location, exc.status, temporary=True,
                                            detail=f"chunked upload failed ({exc.detail}) and the registry cannot "
                                                   "say how much it received; the blob is sent again") from exc
                    log.warning("PATCH %s failed (%s); resuming at byte %d", location, exc.detail, have)
                    offset = min(have - sent, len(part))
            sent += len(part)

        for chunk in chunks:
            buffer += chunk
            while len(buffer) >= self.push_chunk:
                flush(bytes(buffer[:self.push_chunk]))
                del buffer[:self.push_chunk]
        if buffer:
            flush(bytes(buffer))
        url = _with_digest(location, digest)

        def close() -> None:
            resp = self._send("PUT", url, kind="upload_put", scope=scope, data=b"",
                              headers={"Content-Type": _OCTETS, "Content-Length": "0"})
            with released(resp):
                if resp.status_code != 201:
                    raise self._error("PUT", location, resp)
                self._check_digest("PUT", location, resp, digest)

        self._retry(close, f"PUT {location}")
        return sent

    def _patch(self, location: str, scope: str, body: bytes, start: int) -> str:
        resp = self._send("PATCH", location, kind="upload_patch", scope=scope, data=body, headers={
            "Content-Type": _OCTETS, "Content-Length": str(len(body)),
            "Content-Range": f"{start}-{start + len(body) - 1}"})
        with released(resp):
            if resp.status_code != 202:
                raise self._error("PATCH", location, resp)
            return self._location(resp, location) if resp.headers.get("Location") else location

    def _status(self, location: str, scope: str) -> int | None:
        """Bytes the registry holds of an upload session (``Range: 0-N`` -> N + 1)."""
        try:
            resp = self._send("GET", location, kind="upload_status", scope=scope)
        except RegistryError:
            return None
        with released(resp):
            value = resp.headers.get("Range", "")
            if resp.status_code != 204 or "-" not in value:
                return None
            end = value.rsplit("-", 1)[1].strip()
            return int(end) + 1 if end.isdigit() else None

    # -- manifests and tags ------------------------------------------------------------------
    def _manifest_exists(self, name: str, reference: str) -> Digest | None:
        url, scope = self._push_url(name, f"manifests/{reference}")

        def attempt() -> Digest | None:
            resp = self._send("HEAD", url, kind="manifest_head", scope=scope, headers={"Accept": ACCEPT_ALL})
            with released(resp):
                if resp.status_code == 404:
                    return None
                if resp.status_code != 200:
                    raise self._error("HEAD", url, resp)
                header = resp.headers.get("Docker-Content-Digest")
            if header:
                return Digest.parse(header.strip())
            # no digest header: the bytes say (one GET)
            return self.manifest_get(name, reference).digest

        return self._retry(attempt, f"HEAD {url}")

    def _manifest_put(self, name: str, reference: str, manifest: Manifest | Index) -> Digest | None:
        url, scope = self._push_url(name, f"manifests/{reference}")

        def attempt() -> Digest | None:
            resp = self._send("PUT", url, kind="manifest_put", scope=scope, data=manifest.raw,
                              headers={"Content-Type": manifest.media_type, "Content-Length": str(len(manifest.raw))})
            with released(resp):
                if resp.status_code not in (200, 201):
                    raise self._error("PUT", url, resp)
                self._check_digest("PUT", url, resp, manifest.digest)
                subject = resp.headers.get("OCI-Subject")
            if not subject or manifest.subject is None:
                return None
            try:  # the registry lists it as a referrer of that subject (the referrers API)
                return Digest.parse(subject.strip())
            except DigestInvalid:
                log.warning("PUT %s: ignoring invalid OCI-Subject %r", url, subject)
                return None

        return self._retry(attempt, f"PUT {url}")

    def _manifest_read(self, name: str, reference: str) -> Manifest | Index | None:
        try:
            return self.manifest_get(name, reference)
        except RegistryError as exc:
            if exc.status == 404:
                return None
            raise

    def _manifest_delete(self, name: str, reference: str) -> bool:
        url, scope = self._push_url(name, f"manifests/{reference}")
        scope = repository_scope(normalize_upstream_name(self.base, name), "delete,push,pull")

        def attempt() -> bool:
            resp = self._send("DELETE", url, kind="manifest_delete", scope=scope)
            with released(resp):
                if resp.status_code in (200, 202, 204, 404):
                    return True
                error = self._error("DELETE", url, resp)
            if error.status in (400, 405) or "UNSUPPORTED" in error.codes:
                return False
            raise error

        return self._retry(attempt, f"DELETE {url}")

    # -- every request holds one of the client's ``max_concurrency`` slots (as pulls do,
    # ``registry.shared``): several targets pushed at once never exceed the registry's
    # limit, and the connection pool (as large as the slots) never churns --------------
    def blob_exists(self, name: str, digest: Digest) -> bool:
        known = self._blobs.get((name, digest))
        if known is not None:
            return known
        with self.slots:
            return self._blob_exists(name, digest)

    def blob_known(self, name: str, digest: Digest) -> bool | None:
        return self._blobs.get((name, digest))

    def blob_mount(self, name: str, digest: Digest, from_name: str) -> bool:
        with self.slots:
            return self._blob_mount(name, digest, from_name)

    def blob_upload(self, name: str, digest: Digest, chunks: Iterator[bytes], size: int | None) -> int:
        with self.slots:
            return self._blob_upload(name, digest, chunks, size)

    def manifest_exists(self, name: str, reference: str) -> Digest | None:
        with self.slots:
            return self._manifest_exists(name, reference)

    def manifest_put(self, name: str, reference: str, manifest: Manifest | Index) -> Digest | None:
        with self.slots:
            return self._manifest_put(name, reference, manifest)

    def manifest_read(self, name: str, reference: str) -> Manifest | Index | None:
        with self.slots:
            return self._manifest_read(name, reference)

    def manifest_delete(self, name: str, reference: str) -> bool:
        """DELETE a manifest; False when the registry does not delete by this reference
        (400/405, ``UNSUPPORTED``); a 404 counts as deleted."""
        with self.slots:
            return self._manifest_delete(name, reference)

    def tag_delete(self, name: str, tag: str) -> None:
        if self.manifest_delete(name, tag):
            return
        # distribution 2.x: point the tag at a manifest of its own, then delete that by digest
        placeholder = _placeholder()
        empty = Digest.of(_EMPTY)
        if not self.blob_exists(name, empty):
            self.blob_upload(name, empty, iter([_EMPTY]), len(_EMPTY))
        self.manifest_put(name, tag, placeholder)
        if not self.manifest_delete(name, str(placeholder.digest)):
            raise RegistryError("DELETE", f"{self.base}/v2/{name}/manifests/{placeholder.digest}", 405,
                                temporary=False, detail="the registry deletes neither tags nor manifests",
                                hint="enable deletes on the target registry (distribution: storage.delete."
                                     "enabled), or leave prune off for this target")


def _with_digest(location: str, digest: Digest) -> str:
    return location + ("&" if urlsplit(location).query else "?") + urlencode({"digest": str(digest)})


def _placeholder() -> Manifest:
    """A tiny OCI image manifest nobody else has (a fresh annotation): a tag pointed at it
    can be deleted by digest without touching any other tag."""
    from reconciler.model import parse_manifest

    doc = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
           "config": {"mediaType": _EMPTY_CONFIG, "digest": str(Digest.of(_EMPTY)), "size": len(_EMPTY)},
           "layers": [], "annotations": {"io.reconciler.tag-delete": uuid.uuid4().hex}}
    raw = json.dumps(doc, separators=(",", ":")).encode()
    m = parse_manifest(raw, doc["mediaType"])  # type: ignore[arg-type]
    assert isinstance(m, Manifest)
    return m
