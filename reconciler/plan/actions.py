"""The plan's actions: one small frozen type per operation, together the tagged union
``Action`` (the tag is ``op``, also the ``op`` of the JSON form).

Every action shares a tiny base (``BaseAction``): its ``id`` (``REPO/OP/SUBJECT``), the
repository, the ``Change`` (its display symbol), the reason the user reads, the ids it
``depends_on``, and what it downloads, adds and removes. Each type adds exactly the fields
its operation needs, typed as they are (a sync always has a tag and a digest; an upload
always has a file), so nothing reads an optional field and asserts it is there. Generic
readers (renderers, drift, tests) may ask any action for its ``tag``, ``digest``,
``old_digest``, ``kind``, ``publish_name`` and ``source_repo``: None where the operation
has none.

The JSON form is the one docs/plan-json.md describes (``format_version`` 2): the same keys
in the same order, an absent key for a field an action does not have or leaves empty.
"""

from __future__ import annotations

import enum
import reprlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar, TypeAlias

from reconciler.errors import InvalidInput
from reconciler.model import Digest
from reconciler.model.content import Origin


class Change(str, enum.Enum):
    """What an action does to the thing it names; the value is the display symbol."""

    CREATE = "+"
    UPDATE = "~"
    DELETE = "-"


class Op(str, enum.Enum):
    """The kinds of action (the union's tag). Each one is one step of one repository's new
    version (except the repository and publication actions, which act on the repository)."""

    CREATE_REPOSITORY = "create_repository"
    UPDATE_REPOSITORY = "update_repository"      # feed / upstream name recorded on the repository
    DELETE_REPOSITORY = "delete_repository"
    SYNC_TAG = "sync_tag"                        # set a tag to an upstream digest (fetch its content)
    SYNC_REFERRERS = "sync_referrers"            # the referrers of a synced image (signatures, SBOMs, ...)
    UPLOAD = "upload"                            # import a file's images
    COPY_TAG = "copy_tag"                        # a tag and everything under it from another repository
    COPY_CONTENT = "copy_content"                # manifests or indexes (no tags) from another repository
    PIN_TAG = "pin_tag"                          # a tag declared in repos.yaml (REPO:TAG or a digest)
    REMOVE_TAG = "remove_tag"                    # the tag, and with cascade the content only it held
    REMOVE_CONTENT = "remove_content"            # manifests / indexes with the remove cascade
    V1_UPLOAD = "v1_upload"                      # import a docker save tarball as v1 images
    V1_SYNC = "v1_sync"                          # v1 images and tags from the feed's v1 API
    PUBLISH = "publish"                          # switch the publication to the new version
    UNPUBLISH = "unpublish"
    DROP_VERSIONS = "drop_versions"              # retain_versions: drop old versions (gc frees their bytes)


@dataclass(frozen=True)
class Download:
    """Content an action fetches from upstream that the store does not hold yet
    (deduplicated across the whole store and across the plan's earlier actions)."""

    blobs: int = 0
    bytes: int = 0
    manifests: int = 0

    def __add__(self, other: Download) -> Download:
        return Download(self.blobs + other.blobs, self.bytes + other.bytes, self.manifests + other.manifests)

    @property
    def empty(self) -> bool:
        return not (self.blobs or self.manifests)


#: the keys of an action's JSON form, in their order (docs/plan-json.md)
JSON_KEYS = ("id", "op", "change", "repo", "reason", "depends_on", "tag", "digest", "old_digest", "old_origin",
             "tag_origin", "source_repo", "source_tag", "kind", "digests", "file", "file_digest", "publish_name",
             "protected", "feed", "upstream_name", "mask_id", "release_from", "handover", "v1_tags", "upload_tags",
             "referrer_tags", "artifact_types", "cascade",
             "download", "removes", "adds", "versions", "frees_bytes", "skipped", "platforms_skipped", "saved_bytes")


@dataclass(frozen=True, slots=True, kw_only=True, eq=False, repr=False)
class BaseAction:
    """What every action has. ``op`` is the type's tag (a class constant)."""

    op: ClassVar[Op]

    id: str
    repo: str
    change: Change
    reason: str
    depends_on: tuple[str, ...] = ()
    download: Download = field(default_factory=Download)
    #: what the action adds to the repository, per kind
    adds: Mapping[str, int] = field(default_factory=dict)
    #: what the action removes from the repository, per kind (tags, indexes, manifests, blobs)
    removes: Mapping[str, int] = field(default_factory=dict)

    # -- what generic readers ask of any action: None where the operation has none ------
    @property
    def tag(self) -> str | None:
        return None

    @property
    def digest(self) -> Digest | None:
        return None

    @property
    def old_digest(self) -> Digest | None:
        return None

    @property
    def kind(self) -> str | None:
        return None

    @property
    def publish_name(self) -> str | None:
        return None

    @property
    def source_repo(self) -> str | None:
        return None

    @property
    def destructive(self) -> bool:
        return self.change is Change.DELETE or self.op is Op.UNPUBLISH or any(self.removes.values())

    # -- equality, hash and repr, written once for every action type ------------------------
    # They behave as the ones ``dataclass`` generates (same type and equal fields; the hash of
    # the fields; ``SyncTag(id=..., ...)``). Each type says ``eq=False, repr=False`` and
    # inherits these: generating them is an ``exec`` per method and type, ~7 ms of every
    # command's start-up for the 17 types on Python 3.11 (``python -X importtime``).
    def _values(self) -> tuple[Any, ...]:
        return tuple(getattr(self, f.name) for f in fields(self))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, BaseAction) or other.__class__ is not self.__class__:
            return NotImplemented
        return self._values() == other._values()

    def __hash__(self) -> int:
        return hash(self._values())

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return f"{type(self).__qualname__}({shown})"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in _json_keys(type(self)):
            if name == "op":
                out["op"] = self.op.value
                continue
            value = getattr(self, name)
            if value is None or value == () or (isinstance(value, Mapping) and not value):
                continue
            if name == "cascade" and not value:
                continue
            if isinstance(value, enum.Enum):
                value = value.value
            elif isinstance(value, Digest):
                value = str(value)
            elif name in ("digests", "skipped"):
                value = [str(d) for d in value]
            elif name in ("depends_on", "versions", "platforms_skipped", "artifact_types"):
                value = list(value)
            elif isinstance(value, Download):
                if value.empty:
                    continue
                value = {"blobs": value.blobs, "bytes": value.bytes, "manifests": value.manifests}
            elif isinstance(value, Mapping):
                value = dict(value)
            out[name] = value
        return out


_KEYS_OF: dict[type[BaseAction], tuple[str, ...]] = {}


def _json_keys(cls: type[BaseAction]) -> tuple[str, ...]:
    keys = _KEYS_OF.get(cls)
    if keys is None:
        own = {f.name for f in fields(cls)}
        unknown = own - set(JSON_KEYS)
        if unknown:  # a new field must get its place in the JSON form (and in docs/plan-json.md)
            raise TypeError(f"{cls.__name__}: no JSON key order for {sorted(unknown)}")
        keys = _KEYS_OF[cls] = tuple(k for k in JSON_KEYS if k == "op" or k in own)
    return keys


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


#: the tagged union of every action (the tag is ``op``)
Action: TypeAlias = (CreateRepository | UpdateRepository | DeleteRepository | SyncTag | SyncReferrers | Upload
                     | CopyTag | CopyContent | PinTag | RemoveTag | RemoveContent | V1Upload | V1Sync | Publish
                     | Unpublish | DropVersions)

#: the content actions: together they make one new version of their repository
ContentAction: TypeAlias = (SyncTag | SyncReferrers | Upload | CopyTag | CopyContent | PinTag | RemoveTag
                            | RemoveContent)
#: the actions that fetch content from the repository's upstream
UpstreamAction: TypeAlias = SyncTag | SyncReferrers
#: each makes a version of its own
V1Action: TypeAlias = V1Upload | V1Sync
PublicationAction: TypeAlias = Publish | Unpublish

#: op -> its type
BY_OP: dict[Op, type[Action]] = {cls.op: cls for cls in (
    CreateRepository, UpdateRepository, DeleteRepository, SyncTag, SyncReferrers, Upload, CopyTag, CopyContent, PinTag,
    RemoveTag, RemoveContent, V1Upload, V1Sync, Publish, Unpublish, DropVersions)}
assert set(BY_OP) == set(Op), "every op has its type"


def content_roots(actions: Iterable[Action]) -> list[Digest]:
    """The manifests and indexes the actions point tags at, copy or remove."""
    out: list[Digest] = []
    for a in actions:
        if isinstance(a, (CopyContent, RemoveContent, SyncReferrers)):
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
