"""A pull client for the Docker Registry v1 API (docs/original-system.md, "Sync from a v1
registry"): what v1 sync reads from a Crane, an old docker-registry, or another
``reconciler serve``.

``GET /v1/_ping``; ``GET /v1/repositories/<name>/tags`` (an object ``{tag: id}`` or the
older list of ``{"name", "layer"}``); ``GET /v1/images/<id>/ancestry|json|layer``.
``X-Docker-Token: true`` is sent on the repository request and a returned token is used
as ``Authorization: Token ...`` on image requests, as pulp_docker did; Basic credentials
and redirects to static hosting (Crane) go through the same ``AuthSession`` as v2.
Abbreviated image ids in tag lists are expanded against the repository's image list.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import requests

from reconciler.errors import RegistryError
from reconciler.model.registry import RegistryConfig
from reconciler.model.v1image import is_image_id
from reconciler.registry.retry import RetryPolicy, call_with_retry
from reconciler.registry.session import AuthSession
from reconciler.registry.transport import error_from_response, read_limited, released

_JSON_LIMIT = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


class V1Client:
    """v1 pull client for one feed; the registry's ``timeout`` and ``retries`` apply as
    for v2 (a temporary failure is retried with the same backoff)."""

    def __init__(self, config: RegistryConfig) -> None:
        self.session = AuthSession(config, lambda _kind: None)
        self.base = self.session.base
        self.retry = RetryPolicy(attempts=1 + max(0, config.retries))
        self._token: str | None = None

    def close(self) -> None:
        self.session.close()

    def _get_bytes(self, path: str, *, scope: str | None, headers: dict[str, str] | None = None) -> bytes:
        """The (bounded) body of ``GET path``, retried while the failure is temporary;
        image requests carry the repository's ``Token``."""
        url = self.base + path
        h = {**(headers or {}), **(self._image_headers() if path.startswith("/v1/images/") else {})}

        def attempt() -> bytes:
            resp = self.session.send("GET", url, kind="v1", scope=scope, headers=h)
            with released(resp):
                if resp.status_code != 200:
                    raise error_from_response("GET", url, resp)
                token = resp.headers.get("X-Docker-Token")
                if token:
                    self._token = token
                return read_limited(resp, "GET", url, _JSON_LIMIT)

        return call_with_retry(self.retry, attempt, what=f"GET {url}")

    def _get(self, path: str, *, scope: str | None, headers: dict[str, str] | None = None) -> Any:
        body = self._get_bytes(path, scope=scope, headers=headers)
        try:
            return json.loads(body)
        except ValueError as exc:
            raise RegistryError("GET", self.base + path, 200, detail=f"not JSON: {exc}", temporary=False,
                                hint="the feed does not speak the Docker v1 registry API") from exc

    def tags(self, name: str) -> dict[str, str]:
        """``{tag: image_id}`` of ``name`` with full image ids."""
        scope = f"repository:{name}:pull"
        images = self._get(f"/v1/repositories/{name}/images", scope=scope, headers={"X-Docker-Token": "true"})
        ids = [i["id"] for i in images if isinstance(i, dict) and isinstance(i.get("id"), str)] \
            if isinstance(images, list) else []
        doc = self._get(f"/v1/repositories/{name}/tags", scope=scope)
        pairs = doc.items() if isinstance(doc, dict) else (
            (e.get("name"), e.get("layer")) for e in doc if isinstance(e, dict)) if isinstance(doc, list) else ()
        out: dict[str, str] = {}
        for tag, image_id in pairs:
            if not isinstance(tag, str) or not isinstance(image_id, str):
                continue
            if not is_image_id(image_id):  # abbreviated: expand against the image list
                matches = [i for i in ids if i.startswith(image_id)]
                if len(matches) != 1:
                    raise RegistryError("GET", f"{self.base}/v1/repositories/{name}/tags", 200, temporary=False,
                                        detail=f"tag {tag} names image {image_id!r}, which is not one image of {name}")
                image_id = matches[0]
            out[tag] = image_id
        return out

    def ancestry(self, image_id: str) -> list[str]:
        doc = self._get(f"/v1/images/{image_id}/ancestry", scope=None)
        if not isinstance(doc, list) or not doc or not all(is_image_id(i) for i in doc) or doc[0] != image_id:
            raise RegistryError("GET", f"{self.base}/v1/images/{image_id}/ancestry", 200, temporary=False,
                                detail="ancestry is not a list of image ids starting with the image")
        return list(doc)

    def image_json(self, image_id: str) -> bytes:
        return self._get_bytes(f"/v1/images/{image_id}/json", scope=None)

    def layer(self, image_id: str) -> Iterator[bytes]:
        """The layer's bytes as served, streamed."""
        url = f"{self.base}/v1/images/{image_id}/layer"
        resp = self.session.send("GET", url, kind="v1", scope=None, headers=self._image_headers())
        with released(resp):
            if resp.status_code != 200:
                raise error_from_response("GET", url, resp)
            try:
                yield from resp.iter_content(_CHUNK)
            except (requests.RequestException, OSError) as exc:
                raise RegistryError("GET", url, 200, detail=f"layer download broke off: {exc}") from exc

    def _image_headers(self) -> dict[str, str]:
        return {"Authorization": f"Token {self._token}"} if self._token else {}
