"""What the web catalog shows, read from the store: plain values the templates render.

Everything here is about one published version (what pulls get): its tags with full
digests, platforms, sizes and created times, and the repository's recent versions with
what each one changed. Manifests and image configs never change once stored, so what is
worked out from them (``ImageInfo``) is kept per worker in a bounded cache, and version
tag maps likewise; a page view then costs a few queries, not a walk of every blob.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from reconciler.errors import ReconcilerError
from reconciler.model import Digest, Index, Manifest
from reconciler.model.content import TagEntry
from reconciler.model.repository import Publication
from reconciler.store.roles.read import ReadView

#: config blobs larger than this are not read for their created time and platform
MAX_CONFIG = 1024 * 1024
#: versions shown in the history
HISTORY = 20
#: tags per page
PAGE = 100

K = TypeVar("K")
V = TypeVar("V")


class LRU(Generic[K, V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[K, V] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: K, make: Callable[[], V]) -> V:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
        value = make()
        with self._lock:
            self._items[key] = value
            while len(self._items) > self.size:
                self._items.popitem(last=False)
        return value


@dataclass(frozen=True)
class Variant:
    """One image: its platform, total size (config and layers) and created time."""

    digest: str
    platform: str
    size: int
    created: str


@dataclass(frozen=True)
class ImageInfo:
    """A tag's target: an image, or an index of images."""

    kind: str  # "image" | "index"
    media_type: str
    variants: tuple[Variant, ...]

    @property
    def size(self) -> int:
        return sum(v.size for v in self.variants)

    @property
    def created(self) -> str:
        return max((v.created for v in self.variants if v.created), default="")


@dataclass(frozen=True)
class TagRow:
    name: str
    digest: str
    info: ImageInfo


@dataclass(frozen=True)
class VersionRow:
    number: int
    created: str
    operation: str
    added: dict[str, int]
    removed: dict[str, int]
    git_commit: str
    #: tag changes against the previous version: ("+"|"~"|"-", name)
    tag_changes: tuple[tuple[str, str], ...] = ()
    published: bool = False


@dataclass(frozen=True)
class RepoPage:
    pub: Publication
    latest_version: int
    tags: tuple[TagRow, ...]
    total_tags: int
    page: int
    pages: int
    history: tuple[VersionRow, ...] = field(default_factory=tuple)


def _short_media_type(mt: str) -> str:
    return {"application/vnd.docker.distribution.manifest.v2+json": "Docker v2",
            "application/vnd.docker.distribution.manifest.list.v2+json": "Docker manifest list",
            "application/vnd.oci.image.manifest.v1+json": "OCI image",
            "application/vnd.oci.image.index.v1+json": "OCI index",
            "application/vnd.docker.distribution.manifest.v1+prettyjws": "Docker v1 (signed)",
            "application/vnd.docker.distribution.manifest.v1+json": "Docker v1"}.get(mt, mt)


class Views:
    def __init__(self, store: Callable[[], ReadView]) -> None:
        self._store = store
        self._images: LRU[Digest, ImageInfo] = LRU(4096)
        self._tags: LRU[tuple[str, int], dict[str, TagEntry]] = LRU(256)
        self._counts: LRU[tuple[str, int], int] = LRU(16384)

    @property
    def store(self) -> ReadView:
        return self._store()

    # -- images ------------------------------------------------------------------------
    def _config(self, m: Manifest) -> dict[str, object]:
        if m.config is None or (m.config.size or 0) > MAX_CONFIG:
            return {}
        try:
            with self.store.blob_open(m.config.digest) as f:
                doc = json.loads(f.read(MAX_CONFIG + 1))
        except (ReconcilerError, OSError, ValueError):
            return {}
        return doc if isinstance(doc, dict) else {}

    def _variant(self, m: Manifest, platform: str | None) -> Variant:
        config = self._config(m)
        size = sum(d.size or 0 for d in m.blobs())
        created = str(config.get("created") or "")
        if platform is None:
            os_, arch = config.get("os"), config.get("architecture") or m.architecture
            variant = config.get("variant")
            platform = "/".join(str(p) for p in (os_, arch, variant) if p) if (os_ or arch) else "unknown"
        return Variant(str(m.digest), platform, size, created[:19].replace("T", " "))

    def image(self, digest: Digest) -> ImageInfo:
        return self._images.get(digest, lambda: self._image(digest))

    def _image(self, digest: Digest) -> ImageInfo:
        doc = self.store.manifest_get(digest)
        if isinstance(doc, Index):
            variants = []
            for d in doc.manifests:
                platform = str(d.platform) if d.platform else "unknown"
                try:
                    child = self.store.manifest_get(d.digest)
                except ReconcilerError:
                    continue  # a platform subset: the child is not stored
                if isinstance(child, Manifest):
                    variants.append(self._variant(child, platform))
            return ImageInfo("index", _short_media_type(doc.media_type), tuple(variants))
        return ImageInfo("image", _short_media_type(doc.media_type), (self._variant(doc, None),))

    # -- pages -------------------------------------------------------------------------
    def version_tags(self, repo_id: str, number: int) -> dict[str, TagEntry]:
        return self._tags.get((repo_id, number), lambda: dict(self.store.version_get(repo_id, number).tags))

    def repo_page(self, pub: Publication, page: int) -> RepoPage:
        store = self.store
        repo = store.repository_get(pub.repo_id)
        tags = self.version_tags(pub.repo_id, pub.version)
        names = sorted(tags)
        pages = max(1, -(-len(names) // PAGE))
        page = min(max(1, page), pages)
        rows = tuple(TagRow(n, str(tags[n].digest), self.image(tags[n].digest))
                     for n in names[(page - 1) * PAGE:page * PAGE])
        return RepoPage(pub, repo.latest_version, rows, len(names), page, pages, self.history(pub))

    def history(self, pub: Publication) -> tuple[VersionRow, ...]:
        versions = self.store.version_list(pub.repo_id)[-HISTORY:]
        out = []
        for v in reversed(versions):
            changes: list[tuple[str, str]] = []
            if v.number > 0:
                now, before = self.version_tags(pub.repo_id, v.number), self.version_tags(pub.repo_id, v.number - 1)
                for name in sorted(set(now) | set(before)):
                    if name not in before:
                        changes.append(("+", name))
                    elif name not in now:
                        changes.append(("-", name))
                    elif now[name].digest != before[name].digest:
                        changes.append(("~", name))
            out.append(VersionRow(v.number, v.created[:19].replace("T", " "), v.operation,
                                  {k: n for k, n in v.summary.added.items() if n},
                                  {k: n for k, n in v.summary.removed.items() if n},
                                  str(v.provenance.get("git_commit", ""))[:12], tuple(changes),
                                  v.number == pub.version))
        return tuple(out)

    def tag_count(self, pub: Publication) -> int:
        key = (pub.repo_id, pub.version)
        return self._counts.get(key, lambda: len(self.store.version_tag_names(*key)))

    def listing(self, visible: Callable[[Publication], bool], query: str = "") -> list[tuple[Publication, int]]:
        """The publications ``visible`` admits whose name contains ``query``, by name,
        each with its tag count."""
        out = []
        for pub in sorted(self.store.publication_list(), key=lambda p: p.name):
            if query in pub.name and visible(pub):
                out.append((pub, self.tag_count(pub)))
        return out
