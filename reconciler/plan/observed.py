"""What refresh observed: the input of the pure diff, as frozen values.

``Observed`` holds every repository's current state (from the store), the upstream tag
digests of every repository with a feed, the facts about each upload file, and one
``RefGraph`` that covers both the store's manifests and the upstream manifests refresh
fetched (so the diff knows exactly which blobs a new tag needs and how big they are).
Tests build these values directly; ``observe.py`` builds them from a store and upstreams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from reconciler.model import Digest, Index, Manifest
from reconciler.model.content import ContentSet, V1Content
from reconciler.model.repository import Repository, VersionHistory
from reconciler.model.signatures import SignatureLayer
from reconciler.ops.cascade import RefGraph
from reconciler.ops.referrers import Found
from reconciler.ops.state import RepoState
from reconciler.plan.model import RefreshInfo


@dataclass(frozen=True)
class ObservedRepo:
    repository: Repository
    state: RepoState


@dataclass(frozen=True)
class UpstreamTags:
    """An upstream repository's tags *selected by the tag filter*, resolved to digests.
    ``listed`` counts every tag the upstream listed; ``error`` is set when the refresh
    failed (the diff then changes nothing for that repository and says so). ``failed``
    maps selected tags that could not be resolved or fetched to why (only those tags
    fail); ``dropped`` are selected tags deleted upstream while refresh looked; both were
    listed, so a mirror keeps them. ``notes`` are things the plan should say about the
    content (index entries that are not followed)."""

    name: str
    tags: Mapping[str, Digest] = field(default_factory=dict)
    listed: int = 0
    error: str | None = None
    failed: Mapping[str, str] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    #: tags within the filter but not among its newest N (``latest``)
    outranked: tuple[str, ...] = ()
    #: which filters decided ("12 upstream tags, 5 selected: ..."); "" without a filter
    selection: str = ""
    #: tag -> why it is not synced: a single-platform image of a platform not mirrored
    refused: Mapping[str, str] = field(default_factory=dict)
    #: subject digest -> its referrers upstream (``referrers:``; ops/referrers.py)
    referrers: Mapping[Digest, tuple[Found, ...]] = field(default_factory=dict)
    #: why the referrers could not be looked up (the tags were refreshed all the same)
    referrers_error: str | None = None

    @property
    def unresolved(self) -> frozenset[str]:
        """Tags the tag list names that have no digest here: never "gone upstream"."""
        return frozenset(self.failed) | frozenset(self.dropped) | frozenset(self.refused)


@dataclass(frozen=True)
class UploadInfo:
    """An upload file as refresh saw it. ``content`` and ``tags`` are what importing it
    would add (None when the file format cannot be inspected without importing it)."""

    file: str
    file_digest: str
    content: ContentSet | None = None
    tags: Mapping[str, Digest] = field(default_factory=dict)
    #: the manifests/indexes at the top of the file (what an untagged upload declares)
    roots: tuple[Digest, ...] = ()


@dataclass(frozen=True)
class V1UploadInfo:
    """A v1 upload file (``v1: true``) as refresh read it: the images importing it with
    its ``mask_id`` would add (root first), the v1 tags it sets, the sha256 of the file."""

    file: str
    file_digest: str
    images: tuple[str, ...] = ()
    tags: Mapping[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class V1Upstream:
    """An upstream's v1 tags (``enable_v1``); ``error`` when reading them failed."""

    name: str
    tags: Mapping[str, str] = field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True)
class Observed:
    generation: int
    repos: Mapping[str, ObservedRepo] = field(default_factory=dict)
    graph: RefGraph = field(default_factory=lambda: RefGraph({}))
    #: upstream content the store lacks, with blob sizes (from the manifests' descriptors)
    missing_blobs: Mapping[Digest, int] = field(default_factory=dict)
    missing_manifests: frozenset[Digest] = frozenset()
    #: those upstream manifests themselves, as refresh fetched them (apply -f reuses them
    #: instead of fetching them again; a saved plan does not carry them)
    manifests: Mapping[Digest, Manifest | Index] = field(default_factory=dict)
    #: repository id -> upstream tags; absent when not refreshed (--no-refresh)
    upstreams: Mapping[str, UpstreamTags] = field(default_factory=dict)
    #: (repository id, file as written in the desired state) -> facts
    uploads: Mapping[tuple[str, str], UploadInfo] = field(default_factory=dict)
    refresh: RefreshInfo = field(default_factory=RefreshInfo)
    #: the v1 side of every planned repository that has v1 uploads, enable_v1 or v1 content
    v1: Mapping[str, V1Content] = field(default_factory=dict)
    v1_uploads: Mapping[tuple[str, str], V1UploadInfo] = field(default_factory=dict)
    #: repository id -> upstream v1 tags; absent when not refreshed
    v1_upstreams: Mapping[str, V1Upstream] = field(default_factory=dict)
    #: the versions of every planned repository with ``retain_versions`` (in the store)
    history: Mapping[str, VersionHistory] = field(default_factory=dict)
    #: whether a publish that moves a publication starts a grace period for the version it
    #: leaves (``RECONCILER_PUBLISH_GRACE`` > 0): retention then keeps that version for now
    publish_grace: bool = True
    #: parsed indexes a platform filter may judge (fetched upstream, or read from the store)
    indexes: Mapping[Digest, Index] = field(default_factory=dict)
    #: index children a platform filter leaves out of new content -> bytes not downloaded
    skipped_sizes: Mapping[Digest, int] = field(default_factory=dict)
    #: for the ``verify:`` policy (plan/signature_facts.py): the simple-signing layers of
    #: every signature manifest the checked repositories (and their sources) hold or will
    #: get, and those layers' payload bytes
    signatures: Mapping[Digest, tuple[SignatureLayer, ...]] = field(default_factory=dict)
    payloads: Mapping[Digest, bytes] = field(default_factory=dict)
    #: what the manifests of cosign's classic tags are (their first layer's media type), for
    #: copies that take referrers of some artifact types only (plan/signature_facts.py)
    classic_types: Mapping[Digest, str] = field(default_factory=dict)
