"""What every plan action shares (``BaseAction``), the two enums that name an action
(``Op``, the union's tag, and ``Change``, its display symbol), what an action downloads
(``Download``) and the order of the keys of an action's JSON form (``JSON_KEYS``,
docs/plan-json.md ``format_version`` 2). The action types themselves, and the union
``Action``, are in ``reconciler.plan.actions``, which re-exports these names.
"""

from __future__ import annotations

import enum
import reprlib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any, ClassVar

from reconciler.model import Digest


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
    COPY_REFERRERS = "copy_referrers"            # the referrers (and cosign's tags) of what a copy brings
    PIN_TAG = "pin_tag"                          # a tag declared in repos.yaml (REPO:TAG or a digest)
    REMOVE_TAG = "remove_tag"                    # the tag, and with cascade the content only it held
    REMOVE_CONTENT = "remove_content"            # manifests / indexes with the remove cascade
    V1_UPLOAD = "v1_upload"                      # import a docker save tarball as v1 images
    V1_SYNC = "v1_sync"                          # v1 images and tags from the feed's v1 API
    PUBLISH = "publish"                          # switch the publication to the new version
    UNPUBLISH = "unpublish"
    DROP_VERSIONS = "drop_versions"              # retain_versions: drop old versions (gc frees their bytes)
    PUSH_TAG = "push_tag"                        # push a tag and its content to a push target
    DELETE_PUSHED_TAG = "delete_pushed_tag"      # prune: delete at a push target a tag we pushed there
    PUSH_REFERRERS = "push_referrers"            # push the referrers of a tag's image to a push target


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
             "download", "removes", "adds", "versions", "frees_bytes", "skipped", "platforms_skipped", "saved_bytes",
             "target", "registry", "target_name", "push_blobs", "push_bytes", "blobs_present")


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
