"""Fill a test registry over the V2 push API with ``requests`` (independent of our client).

``push_image(url, name, image, tags=...)`` uploads every blob (HEAD, else POST + monolithic
PUT), PUTs an index's children by digest first, then the manifest by each tag (or by digest
when no tag is given). ``delete_manifest`` deletes by digest (distribution 2.8 cannot delete
a tag by name; deleting a digest removes every tag on it). Basic and Bearer challenges are
answered with ``auth=(user, password)``; a Bearer token is asked for ``pull,push,delete``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urljoin

import requests

from tests.support.imagegen import Image

_PARAM_RE = re.compile(r'(\w+)="([^"]*)"')


@dataclass
class _Pusher:
    base: str
    name: str
    auth: tuple[str, str] | None = None
    session: requests.Session = field(default_factory=requests.Session)
    _authorization: str | None = None

    def request(self, method: str, url: str, *, headers: Mapping[str, str] | None = None,
                params: Mapping[str, str] | None = None, data: bytes | None = None) -> requests.Response:
        """One request, answering one auth challenge if the registry sends it."""
        headers = dict(headers or {})
        if self._authorization:
            headers["Authorization"] = self._authorization
        resp = self.session.request(method, url, headers=headers, params=params, data=data, timeout=30)
        if resp.status_code != 401:
            return resp
        challenge = resp.headers.get("WWW-Authenticate", "")
        resp.close()
        if challenge.lower().startswith("basic") and self.auth:
            self.session.auth = self.auth
        elif challenge.lower().startswith("bearer"):
            params = dict(_PARAM_RE.findall(challenge))
            query = {"service": params.get("service", ""),
                     "scope": f"repository:{self.name}:pull,push,delete"}
            tok = self.session.get(params["realm"], params=query, auth=self.auth, timeout=30)
            tok.raise_for_status()
            body = tok.json()
            self._authorization = "Bearer " + (body.get("token") or body["access_token"])
            headers["Authorization"] = self._authorization
        else:
            return resp
        return self.session.request(method, url, headers=headers, params=params, data=data, timeout=30)

    def push_blob(self, digest: str, data: bytes) -> None:
        head = self.request("HEAD", f"{self.base}/v2/{self.name}/blobs/{digest}")
        if head.status_code == 200:
            return
        start = self.request("POST", f"{self.base}/v2/{self.name}/blobs/uploads/")
        _check(start, 202, "POST blob upload")
        location = urljoin(self.base + "/", start.headers["Location"])
        put = self.request("PUT", location, params={"digest": digest}, data=data,
                           headers={"Content-Type": "application/octet-stream"})
        _check(put, 201, f"PUT blob {digest}")

    def push_manifest(self, reference: str, media_type: str, raw: bytes) -> None:
        resp = self.request("PUT", f"{self.base}/v2/{self.name}/manifests/{reference}", data=raw,
                            headers={"Content-Type": media_type})
        _check(resp, 201, f"PUT manifest {self.name}:{reference}")

    def push(self, image: Image, tags: tuple[str, ...] | list[str]) -> None:
        for digest, data in image.blobs.items():
            self.push_blob(digest, data)
        for child in image.children:
            self.push(child, ())
        m = image.manifest
        for ref in (list(tags) or [str(m.digest)]):
            self.push_manifest(ref, m.media_type, m.raw)


def _check(resp: requests.Response, want: int, what: str) -> None:
    if resp.status_code != want:
        raise AssertionError(f"{what}: HTTP {resp.status_code}: {resp.text[:500]}")


def push_image(registry_url: str, name: str, image: Image, tags: tuple[str, ...] | list[str] = (),
               auth: tuple[str, str] | None = None) -> Image:
    """Push ``image`` (children, blobs, manifest) to ``name``; tag it with each of ``tags``."""
    pusher = _Pusher(registry_url.rstrip("/"), name, auth)
    try:
        pusher.push(image, tags)
    finally:
        pusher.session.close()
    return image


def delete_manifest(registry_url: str, name: str, digest: str, auth: tuple[str, str] | None = None) -> None:
    """Delete a manifest by digest (and with it every tag that points at it)."""
    pusher = _Pusher(registry_url.rstrip("/"), name, auth)
    try:
        resp = pusher.request("DELETE", f"{pusher.base}/v2/{name}/manifests/{digest}")
        _check(resp, 202, f"DELETE {name}@{digest}")
    finally:
        pusher.session.close()
