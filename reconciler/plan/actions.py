"""The plan's actions: one small frozen type per operation, together the tagged union
``Action`` (the tag is ``op``, also the ``op`` of the JSON form).

Every action shares a tiny base (``BaseAction``, in ``plan/action_base.py`` with ``Op``,
``Change``, ``Download`` and ``JSON_KEYS``, all re-exported here): its ``id``
(``REPO/OP/SUBJECT``), the repository, the ``Change`` (its display symbol), the reason the
user reads, the ids it ``depends_on``, and what it downloads, adds and removes. Each type adds exactly the fields
its operation needs, typed as they are (a sync always has a tag and a digest; an upload
always has a file), so nothing reads an optional field and asserts it is there. Generic
readers (renderers, drift, tests) may ask any action for its ``tag``, ``digest``,
``old_digest``, ``kind``, ``publish_name`` and ``source_repo``: None where the operation
has none.

The JSON form is the one docs/plan-json.md describes (``format_version`` 2): the same keys
in the same order, an absent key for a field an action does not have or leaves empty.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, TypeAlias

from reconciler.errors import InvalidInput
from reconciler.model import Digest
from reconciler.model.content import Origin
from reconciler.plan.action_base import JSON_KEYS as JSON_KEYS
from reconciler.plan.action_base import BaseAction as BaseAction
from reconciler.plan.action_base import Change as Change
from reconciler.plan.action_base import Download as Download
from reconciler.plan.action_base import Op as Op

# -- the repository ------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class CreateRepository(BaseAction):
    op: ClassVar[Op] = Op.CREATE_REPOSITORY
    feed: str | None = None
    upstream_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class UpdateRepository(BaseAction):
    """The feed or upstream name recorded on the repository changes."""

    op: ClassVar[Op] = Op.UPDATE_REPOSITORY
    feed: str | None = None
    upstream_name: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class DeleteRepository(BaseAction):
    """``--prune-repositories``: a repository repos.yaml no longer declares."""

    op: ClassVar[Op] = Op.DELETE_REPOSITORY
    #: the name it holds (a claim elsewhere in the plan may wait for the deletion)
    publish_name: str | None = None


# -- tags and content (together one new version of the repository) -----------------------

@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class SetTag(BaseAction):
    """Point ``tag`` at ``digest``, bringing its closure (``SyncTag``, ``CopyTag``, ``PinTag``)."""

    #: the origin the tag gets
    origin: ClassVar[Origin]
    tag: str
    #: the digest the tag will point at
    digest: Digest
    #: what the tag pointed at before (None: new, or same digest)
    old_digest: Digest | None = None
    #: the tag's origin before, when only that changes (same digest)
    old_origin: str | None = None
    #: index children it leaves out (platforms not mirrored; the version records them as
    #: absent), the platforms they are for, and what leaving them out saves
    skipped: tuple[Digest, ...] = ()
    platforms_skipped: tuple[str, ...] = ()
    saved_bytes: int | None = None

    @property
    def new_origin(self) -> Origin:
        """The origin the tag gets (a pin may carry another than its type's)."""
        return self.origin


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class SyncTag(SetTag):
    """Set a tag to an upstream digest, fetching its content first."""

    op: ClassVar[Op] = Op.SYNC_TAG
    origin: ClassVar[Origin] = Origin.SYNC
    #: a mirror: the old target's content that nothing else needs any more goes too
    cascade: bool = False


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class SyncReferrers(BaseAction):
    """The referrers upstream of the image a synced tag points at, and theirs
    (``referrers:``; ops/referrers.py): the manifests as content of the repository, cosign's
    classic tags (``sha256-<hex>.sig``, ...) as tags."""

    op: ClassVar[Op] = Op.SYNC_REFERRERS
    #: the tag whose image they refer to, and that image
    tag: str
    digest: Digest
    #: the referrer manifests and indexes it adds (those the repository lacks)
    digests: tuple[Digest, ...] = ()
    #: cosign's tags it sets or moves (tag -> digest)
    referrer_tags: Mapping[str, str] = field(default_factory=dict)
    #: what the referrers it adds are, one artifact type each (in ``digests``' order;
    #: "" when unknown)
    artifact_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class CopyTag(SetTag):
    """A tag and everything under it from another repository (its state after this plan)."""

    op: ClassVar[Op] = Op.COPY_TAG
    origin: ClassVar[Origin] = Origin.COPY
    source_repo: str
    source_tag: str


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class PinTag(SetTag):
    """A tag repos.yaml pins: to ``source_repo:source_tag``, or to a digest the repository holds."""

    op: ClassVar[Op] = Op.PIN_TAG
    origin: ClassVar[Origin] = Origin.PIN
    source_repo: str | None = None
    source_tag: str | None = None
    #: the origin the tag gets when it is not ``pin``: the one-off ``reconciler tag`` is this
    #: action with ``manual``, the origin that command has always recorded (None: ``pin``)
    tag_origin: str | None = None

    @property
    def new_origin(self) -> Origin:
        return Origin(self.tag_origin) if self.tag_origin else self.origin


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class Upload(BaseAction):
    """Import a file's images and set the tags it sets (``upload_tags``)."""

    op: ClassVar[Op] = Op.UPLOAD
    origin: ClassVar[Origin] = Origin.UPLOAD
    file: str
    #: sha256 of the file when planned (None: not read, its content is learnt on import)
    file_digest: str | None = None
    #: ``tag:`` of the upload entry, and the digest the file gives it
    tag: str | None = None
    digest: Digest | None = None
    old_digest: Digest | None = None
    #: every tag the import sets (tag -> digest), as reviewed
    upload_tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class CopyContent(BaseAction):
    """Manifests or indexes (no tags) and what they need, from another repository."""

    op: ClassVar[Op] = Op.COPY_CONTENT
    source_repo: str
    #: ``manifest`` or ``index``
    kind: str
    #: the ones it copies (those the repository lacks)
    digests: tuple[Digest, ...] = ()
    #: index children it leaves out (platforms not mirrored; the version records them as
    #: absent), the platforms they are for, and what leaving them out saves
    skipped: tuple[Digest, ...] = ()
    platforms_skipped: tuple[str, ...] = ()
    saved_bytes: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class CopyReferrers(BaseAction):
    """The referrers in the source repository of what a copy brings (signatures, SBOMs,
    attestations, and theirs), and cosign's classic tags (``sha256-<hex>.sig``, ...) of the
    copied images (``copy: [{referrers: ...}]``): the manifests as content, the tags as
    copied tags."""

    op: ClassVar[Op] = Op.COPY_REFERRERS
    source_repo: str
    #: the copied tag whose image they refer to (None: a copy of manifests or indexes),
    #: and the copied manifest or index they follow (the tag's; the first copied digest)
    tag: str | None = None
    digest: Digest | None = None
    #: the referrer manifests and indexes it adds (those the repository lacks)
    digests: tuple[Digest, ...] = ()
    #: cosign's tags it sets or moves (tag -> digest)
    referrer_tags: Mapping[str, str] = field(default_factory=dict)
    #: one artifact type per entry of ``digests`` ("" when unknown)
    artifact_types: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class RemoveTag(BaseAction):
    op: ClassVar[Op] = Op.REMOVE_TAG
    tag: str
    old_digest: Digest
    #: the content only this tag needed goes too (a mirror)
    cascade: bool = False


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class RemoveContent(BaseAction):
    """Manifests or indexes with the remove cascade."""

    op: ClassVar[Op] = Op.REMOVE_CONTENT
    #: ``manifest``, ``index``, or ``untagged`` (prune: content no tag needs)
    kind: str
    #: the manifests and indexes it removes (a prune may remove only stray blobs: none)
    digests: tuple[Digest, ...] = ()


# -- Docker v1 (each a version of its own) -------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class V1Upload(BaseAction):
    """Import a docker save tarball as v1 images."""

    op: ClassVar[Op] = Op.V1_UPLOAD
    file: str
    file_digest: str | None = None
    #: the image left out with its ancestors
    mask_id: str | None = None
    #: the v1 tags it sets (tag -> image id), as reviewed
    v1_tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class V1Sync(BaseAction):
    """v1 images and tags from the feed's v1 API."""

    op: ClassVar[Op] = Op.V1_SYNC
    upstream_name: str
    v1_tags: Mapping[str, str] = field(default_factory=dict)


# -- the publication and the versions ------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class Publish(BaseAction):
    """Switch the publication to the repository's new version."""

    op: ClassVar[Op] = Op.PUBLISH
    publish_name: str
    protected: bool = False
    #: the repository that holds ``publish_name`` now (declared elsewhere, kept reserved
    #: after an unpublish, or pruned); the claim releases it in the same transaction
    release_from: str | None = None
    #: publication actions sharing this value are applied together in one store
    #: transaction (a name moving between them, or two names swapping)
    handover: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class Unpublish(BaseAction):
    op: ClassVar[Op] = Op.UNPUBLISH
    publish_name: str | None = None
    handover: str | None = None

    @property
    def release_from(self) -> str | None:
        """An unpublish claims no name (as ``Publish.release_from``: always None)."""
        return None


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class DropVersions(BaseAction):
    """``retain_versions``: drop old versions (``store gc`` frees their bytes)."""

    op: ClassVar[Op] = Op.DROP_VERSIONS
    #: exactly the version numbers it drops
    versions: tuple[int, ...]
    #: bytes no version holds any more afterwards (freed once gc runs)
    frees_bytes: int | None = None


# -- push targets (after the repository's new version) -----------------------------------

@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class PushTag(BaseAction):
    """Push ``tag`` (its manifest or index and everything under it) to repository
    ``target_name`` of the ``registries:`` entry ``registry``: blobs the target lacks,
    then manifests, then the tag (``old_digest``: where it pointed there before)."""

    op: ClassVar[Op] = Op.PUSH_TAG
    #: ``harbor/team/app``, as shown
    target: str
    registry: str
    target_name: str
    tag: str
    digest: Digest
    old_digest: Digest | None = None
    #: blobs of the closure and their bytes (None: not known when planned, an upload's
    #: content), and how many of them the target holds already
    push_blobs: int | None = None
    push_bytes: int | None = None
    blobs_present: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class DeletePushedTag(BaseAction):
    """``prune: true``: delete at the target a tag we pushed there that is no longer selected."""

    op: ClassVar[Op] = Op.DELETE_PUSHED_TAG
    target: str
    registry: str
    target_name: str
    tag: str
    old_digest: Digest


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class PushReferrers(BaseAction):
    """The referrers (signatures, SBOMs: manifests whose ``subject`` is the image ``tag``
    names, and theirs) the target lacks, each with its blobs; listed with the referrers
    API where the target has it, else in the referrers tag schema's index (``sha256-<hex>``)."""

    op: ClassVar[Op] = Op.PUSH_REFERRERS
    target: str
    registry: str
    target_name: str
    #: the tag whose image they refer to, and that image
    tag: str
    digest: Digest
    #: the referrer manifests to push, each after its own subject
    digests: tuple[Digest, ...] = ()
    #: one artifact type each, in ``digests``' order ("" when unknown)
    artifact_types: tuple[str, ...] = ()


#: the tagged union of every action (the tag is ``op``)
Action: TypeAlias = (CreateRepository | UpdateRepository | DeleteRepository | SyncTag | SyncReferrers | Upload
                      | CopyTag | CopyContent | CopyReferrers | PinTag | RemoveTag | RemoveContent | V1Upload
                      | V1Sync | Publish | Unpublish | DropVersions | PushTag | DeletePushedTag | PushReferrers)
#: what a repository's turn in the apply runs (every action but the pushes, which go after all)
RepositoryAction: TypeAlias = (CreateRepository | UpdateRepository | DeleteRepository | SyncTag | SyncReferrers
                               | Upload | CopyTag | CopyContent | CopyReferrers | PinTag | RemoveTag | RemoveContent
                               | V1Upload | V1Sync | Publish | Unpublish | DropVersions)

#: the content actions: together they make one new version of their repository
ContentAction: TypeAlias = (SyncTag | SyncReferrers | Upload | CopyTag | CopyContent | CopyReferrers | PinTag
                            | RemoveTag | RemoveContent)
#: the actions that fetch content from the repository's upstream
UpstreamAction: TypeAlias = SyncTag | SyncReferrers
#: each makes a version of its own
V1Action: TypeAlias = V1Upload | V1Sync
PublicationAction: TypeAlias = Publish | Unpublish
#: run after the repository's new version, one push target at a time
PushAction: TypeAlias = PushTag | DeletePushedTag | PushReferrers

#: op -> its type
BY_OP: dict[Op, type[Action]] = {cls.op: cls for cls in (
    CreateRepository, UpdateRepository, DeleteRepository, SyncTag, SyncReferrers, Upload, CopyTag, CopyContent,
    CopyReferrers, PinTag, RemoveTag, RemoveContent, V1Upload, V1Sync, Publish, Unpublish, DropVersions, PushTag,
    DeletePushedTag, PushReferrers)}
assert set(BY_OP) == set(Op), "every op has its type"


def content_roots(actions: Iterable[Action]) -> list[Digest]:
    """The manifests and indexes the actions point tags at, copy or remove."""
    out: list[Digest] = []
    for a in actions:
        if isinstance(a, (CopyContent, RemoveContent, SyncReferrers, CopyReferrers)):
            out += a.digests
        if a.digest:
            out.append(a.digest)
    return out


def action_from_json(obj: Mapping[str, Any]) -> Action:
    """The action of one entry of a plan's ``actions`` (``InvalidInput`` when malformed)."""
    try:
        kw: dict[str, Any] = dict(obj)
        cls = BY_OP[Op(kw.pop("op"))]
        kw["change"] = Change(kw["change"])
        for name in ("digest", "old_digest"):
            if kw.get(name) is not None:
                kw[name] = Digest.parse(kw[name])
        for name in ("digests", "skipped"):
            if name in kw:
                kw[name] = tuple(Digest.parse(d) for d in kw[name])
        for name in ("depends_on", "platforms_skipped", "artifact_types"):
            if name in kw:
                kw[name] = tuple(kw[name])
        if "versions" in kw:
            kw["versions"] = tuple(int(n) for n in kw["versions"])
        if "download" in kw:
            kw["download"] = Download(**kw["download"])
        return cls(**kw)
    except (KeyError, TypeError, ValueError) as exc:
        raise InvalidInput(f"invalid action in plan: {exc}: {dict(obj)!r}") from exc
