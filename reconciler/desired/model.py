"""The desired state as frozen values, produced by the loader once defaults are merged.

Everything here is immutable and fully resolved: feeds are ``RegistryConfig`` objects
(a ``registries:`` entry or an ad-hoc URL), upload paths are absolute, ``all`` selections
are the ``ALL`` sentinel.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from reconciler.model import Digest
from reconciler.model.content import Origin
from reconciler.model.platforms import PlatformFilter
from reconciler.model.referrers import ReferrerPolicy
from reconciler.model.registry import RegistryConfig
from reconciler.model.tagfilter import TagFilter

if TYPE_CHECKING:
    from reconciler.desired.yamlpos import Positions

ALL: Literal["all"] = "all"
#: a list of names/digests, or every item of that kind
Selection = tuple[str, ...] | Literal["all"]


@dataclass(frozen=True)
class Upload:
    file: Path
    tag: str | None = None
    #: import a docker save tarball as Docker v1 images; ``mask_id`` leaves an ancestor out
    v1: bool = False
    mask_id: str | None = None


@dataclass(frozen=True)
class CopySpec:
    """Copy from another repository: tags (bring the tag and everything under it),
    manifests (their blobs, no tags), indexes (their manifests and blobs, no tags)."""

    from_repo: str
    tags: Selection = ()
    manifests: Selection = ()
    indexes: Selection = ()
    #: copy only these platforms of the copied indexes (None: what the source holds)
    platforms: PlatformFilter | None = None


@dataclass(frozen=True)
class TagPin:
    """``name: REPO:TAG`` (whatever that tag resolves to after this apply) or
    ``name: sha256:...`` (a digest in this repository)."""

    name: str
    source_repo: str | None = None
    source_tag: str | None = None
    digest: Digest | None = None
    #: the origin the tag gets: ``pin`` from repos.yaml; ``manual`` for the one-off
    #: ``reconciler tag`` (``desired.oneoff.tag_spec``), as that command always recorded
    origin: Origin = Origin.PIN


@dataclass(frozen=True)
class Removal:
    tags: tuple[str, ...] = ()
    manifests: tuple[Digest, ...] = ()
    indexes: tuple[Digest, ...] = ()


@dataclass(frozen=True)
class RepositorySpec:
    id: str
    feed: RegistryConfig | None = None
    upstream_name: str | None = None
    tag_filter: TagFilter = field(default_factory=TagFilter)
    mirror: bool = False
    allow_empty: bool = False
    #: sync only these platforms of multi-platform indexes (None: every platform)
    platforms: PlatformFilter | None = None
    #: which referrers (signatures, SBOMs, attestations) come with each synced image;
    #: repos.yaml's default is all (build.py), a spec made in code asks for them explicitly
    referrers: ReferrerPolicy = field(default_factory=lambda: ReferrerPolicy(enabled=False))
    #: also sync v1 images and v1 tags from the feed's v1 API
    enable_v1: bool = False
    uploads: tuple[Upload, ...] = ()
    copies: tuple[CopySpec, ...] = ()
    pins: tuple[TagPin, ...] = ()
    remove: Removal = field(default_factory=Removal)
    prune: bool = False
    publish: str | None = None
    protected: bool = False
    #: keep only the newest N versions (None: keep every version); see ops/retention.py
    retain_versions: int | None = None


@dataclass(frozen=True)
class DesiredState:
    path: Path
    #: sha256 of the file's bytes: a saved plan records it and apply refuses a changed file
    digest: str
    version: int
    registries: Mapping[str, RegistryConfig]
    repositories: Mapping[str, RepositorySpec]
    #: where each entry sits in the file, for plan-time errors (not part of the value)
    positions: Positions | None = field(default=None, compare=False, repr=False)
    #: the file as the user named it (``repos.yaml``, not the absolute ``path``)
    file: str = field(default="", compare=False)

    def where(self, *path: str | int) -> str | None:
        """``FILE:LINE:COL`` of the entry at ``path`` (e.g. ``"repositories", "web",
        "publish"``), or of its nearest ancestor the file has; None when unknown."""
        if self.positions is None:
            return None
        line, col = self.positions.value(tuple(path))
        return f"{self.file or self.path}:{line}:{col}"
