"""Real registries' documented quirks, emulated in front of the distribution registry.

Each quirk is a named set of ``FaultProxy`` faults that hit every matching request for as
long as the quirk is on; the registry behind the proxy holds real content, so everything
that is not the quirk is the real thing. ``QUIRKS`` says which registries behave that way
(docs/reliability.md, "Upstream quirks", has the same table with what we do about it)::

    proxy = QuirkProxy(registry.url).start()
    proxy.emulate("head-404")         # Nexus: a manifest HEAD is 404 where a GET works
    ...                               # sync through proxy.url
    proxy.requests()                  # what the client sent, e.g. ["GET /v2/", "GET .../tags/list", ...]
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tests.support.faultproxy import Fault, FaultProxy

HEAD_MANIFEST = r"^HEAD /v2/.+/manifests/"
TAG_LIST = r"^GET /v2/.+/tags/list$"


@dataclass(frozen=True)
class Quirk:
    who: str
    faults: tuple[dict[str, Any], ...]


QUIRKS: dict[str, Quirk] = {
    "head-404": Quirk("Sonatype Nexus (HEAD of a manifest that GET serves)",
                      ({"pattern": HEAD_MANIFEST, "kind": "status", "status": 404, "code": "MANIFEST_UNKNOWN"},)),
    "head-405": Quirk("old distribution behind token auth",
                      ({"pattern": HEAD_MANIFEST, "kind": "status", "status": 405, "code": "UNSUPPORTED"},)),
    "head-403": Quirk("registries whose access rules treat HEAD apart from GET",
                      ({"pattern": HEAD_MANIFEST, "kind": "status", "status": 403, "code": "DENIED"},)),
    "head-501": Quirk("minimal registries and static file servers without HEAD",
                      ({"pattern": HEAD_MANIFEST, "kind": "status", "status": 501, "code": "UNSUPPORTED"},)),
    "no-digest-header": Quirk("registries and caching proxies that leave out the optional header",
                              ({"pattern": HEAD_MANIFEST, "kind": "strip", "headers": {"Docker-Content-Digest": ""}},)),
    "tags-null": Quirk("registries that answer an unknown or emptied name with 200 and no tags",
                       ({"pattern": TAG_LIST, "kind": "null_tags"},)),
    "tags-empty": Quirk("the same, with an empty list",
                        ({"pattern": TAG_LIST, "kind": "empty_tags"},)),
    "page-size-100": Quirk("registries that cap the tag-list page size",
                           ({"pattern": TAG_LIST, "kind": "page_limit", "limit": 100},)),
    "no-page-size": Quirk("registries that refuse any n",
                          ({"pattern": TAG_LIST, "kind": "page_limit", "limit": 0},)),
    "pull-rate-limit": Quirk("Docker Hub's pull rate limit (anonymous pulls per 6 hours)",
                             ({"pattern": r"^(GET|HEAD) /v2/.+/manifests/", "kind": "status", "status": 429,
                               "code": "TOOMANYREQUESTS", "headers": {"Retry-After": "21600"}},)),
}


@dataclass
class QuirkProxy(FaultProxy):
    """A ``FaultProxy`` that can take on the ``QUIRKS`` by name."""

    quirks: list[str] = field(default_factory=list)

    def emulate(self, name: str) -> list[Fault]:
        """Turn quirk ``name`` on, for every request from now on."""
        self.quirks.append(name)
        return [self.add(spec["pattern"], spec["kind"], times=None,
                         **{k: v for k, v in spec.items() if k not in ("pattern", "kind")})
                for spec in QUIRKS[name].faults]

    def requests(self) -> list[str]:
        """``METHOD /path`` of every request since the last ``forget()``."""
        with self._lock:
            return [entry.split(" -> ", 1)[0] for entry in self.log]

    def forget(self) -> None:
        with self._lock:
            self.log.clear()
