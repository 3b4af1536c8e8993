"""A small in-memory world for pure plan tests: images from imagegen, an ``Observed``
built from repository states and upstream tag maps, and ``DesiredState`` builders."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict, Unpack

from reconciler.desired.model import CopySpec, DesiredState, Removal, RepositorySpec, TagPin, Upload
from reconciler.model import Digest, Manifest, PlatformFilter
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.model.referrers import ReferrerPolicy
from reconciler.model.registry import RegistryConfig
from reconciler.model.repository import Repository
from reconciler.model.tagfilter import TagFilter
from reconciler.ops.cascade import RefGraph
from reconciler.ops.state import RepoState
from reconciler.plan.model import RefreshInfo
from reconciler.plan.observed import Observed, ObservedRepo, UpstreamTags
from tests.support.imagegen import Image, build_image, build_multiarch

HUB = RegistryConfig(name="hub", url="http://127.0.0.1:5000")

IMAGES: dict[str, Image] = {
    "a": build_image("a"),
    "b": build_image("b"),
    "c": build_image("c"),
    "multi": build_multiarch("multi"),
}


def digest(name: str) -> Digest:
    return IMAGES[name].digest


def graph() -> RefGraph:
    return RefGraph.from_manifests([m for img in IMAGES.values() for m in img.all_manifests()])


def content_of(*names: str) -> ContentSet:
    return graph().closure([digest(n) for n in names])


def state(tags: Mapping[str, tuple[str, Origin]], extra: tuple[str, ...] = ()) -> RepoState:
    names = {img for img, _ in tags.values()} | set(extra)
    return RepoState(content_of(*names), {t: TagEntry(digest(img), o) for t, (img, o) in tags.items()})


def repo(repo_id: str, st: RepoState, *, latest: int = 1, publish: str | None = None,
         published: int | None = None, feed: str | None = None, upstream: str | None = None,
         protected: bool = False) -> ObservedRepo:
    return ObservedRepo(Repository(id=repo_id, latest_version=latest, feed=feed, upstream_name=upstream,
                                   publish_name=publish, published_version=published, protected=protected),
                        st)


def observed(repos: Mapping[str, ObservedRepo] = {}, upstreams: Mapping[str, Mapping[str, str]] | None = None,
             *, in_store: tuple[str, ...] = (), generation: int = 7) -> Observed:
    """``upstreams``: repo id -> {tag: image name}; blobs/manifests of images not in any
    repository and not in ``in_store`` count as missing (to download)."""
    present = ContentSet()
    for r in repos.values():
        present = present.union(r.state.content)
    present = present.union(content_of(*in_store)) if in_store else present
    everything = content_of(*IMAGES)
    missing = everything.difference(present)
    sizes: dict[Digest, int] = {}
    for img in IMAGES.values():
        for m in img.all_manifests():
            if isinstance(m, Manifest):
                for d in m.blobs():
                    assert d.size is not None  # only schema1 layers lack one; IMAGES has none
                    sizes[d.digest] = d.size
    ups = {}
    if upstreams is not None:
        ups = {r: UpstreamTags(f"lib/{r}", {t: digest(n) for t, n in tags.items()}, listed=len(tags))
               for r, tags in upstreams.items()}
    return Observed(generation=generation, repos=dict(repos), graph=graph(),
                    missing_blobs={b: sizes[b] for b in missing.blobs},
                    missing_manifests=missing.manifests | missing.indexes, upstreams=ups,
                    refresh=RefreshInfo(refreshed=upstreams is not None, upstreams=len(ups),
                                        tags=sum(len(u.tags) for u in ups.values()), seconds=0.2))


class SpecFields(TypedDict, total=False):
    """What a test may set on a ``synced`` repository besides its feed."""

    tag_filter: TagFilter
    mirror: bool
    allow_empty: bool
    platforms: PlatformFilter | None
    enable_v1: bool
    uploads: tuple[Upload, ...]
    copies: tuple[CopySpec, ...]
    pins: tuple[TagPin, ...]
    remove: Removal
    prune: bool
    publish: str | None
    protected: bool
    retain_versions: int | None
    referrers: ReferrerPolicy


def synced(repo_id: str, **kw: Unpack[SpecFields]) -> RepositorySpec:
    return RepositorySpec(id=repo_id, feed=HUB, upstream_name=f"lib/{repo_id}", **kw)


def desired(*specs: RepositorySpec) -> DesiredState:
    return DesiredState(path=Path("/work/repos.yaml"), digest="sha256:" + "d" * 64, version=1, registries={"hub": HUB},
                        repositories={s.id: s for s in specs})


__all__ = ["CopySpec", "TagPin", "Origin", "RepositorySpec"]
