"""The ``Plan`` value: what apply will do, made by the pure diff, saved as JSON.

A plan is data, not behaviour (Terraform's ``plans.Plan``): ordered ``Action`` values (one
small type per operation, ``plan.actions``) with ids, dependencies and reasons, the
resolved digest of every tag it sets, what it will download, and the store generation and
desired-file digest it was made against so that apply can refuse a stale plan. Renderers
(text, JSON, Markdown) and apply only read it.

The ``Change`` enum (``plan.actions``) is its own display symbol (``+`` create, ``~`` change, ``-`` remove).
``to_json``/``from_json`` round-trip exactly; ``format_version`` is documented in
docs/plan-json.md and bumped on any incompatible change.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from reconciler.errors import InvalidInput
from reconciler.model import jsonsafe
from reconciler.plan import seal
from reconciler.plan.actions import Action, Change, Download, Op, action_from_json

#: 2: ``errors`` are objects (``PlanError``), a saved plan carries ``digest`` (and ``hmac``)
FORMAT_VERSION = 2


#: reasons, as the user reads them (issue 7 names these)
NEW_UPSTREAM_TAG = "new upstream tag"
TAG_MOVED_UPSTREAM = "tag moved upstream"
TAG_GONE_UPSTREAM = "tag gone upstream (mirror)"
TAG_MISSING_HERE = "tag missing here, restored from upstream"
#: ``latest: N``: a newer version took its place (mirror)
OUTRANKED = "dropped out of the newest {n} (mirror)"
#: ``platforms``: platforms the index lists that the repository now selects
PLATFORMS_ADDED = "platforms added"
DECLARED = "declared in repos.yaml"
#: a synced image has referrers (signatures, SBOMs, ...) upstream the repository lacks
REFERRERS_UPSTREAM = "referrers upstream"
REMOVED_FROM_DESIRED = "removed from repos.yaml"


@dataclass(frozen=True)
class PlanError:
    """Something the plan could not see or decide; apply refuses a plan that has one.

    ``kind``: ``refresh`` (an upstream could not be read), ``blocked`` (what repos.yaml
    asks of this repository depends on one whose upstream could not be read), ``semantic``
    (repos.yaml asks for something the plan cannot do), ``name`` (a publish name held by a
    repository repos.yaml does not declare). ``repo`` is the repository it stops (None: the whole
    plan); ``where`` is ``FILE:LINE:COL`` of the repos.yaml entry at fault."""

    message: str
    repo: str | None = None
    kind: str = "refresh"
    where: str | None = None
    hint: str | None = None

    def __str__(self) -> str:
        where = f"{self.where}: " if self.where else ""
        repo = f"{self.repo}: " if self.repo else ""
        return f"{where}{repo}{self.message}"

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in (("message", self.message), ("repo", self.repo), ("kind", self.kind),
                                  ("where", self.where), ("hint", self.hint)) if v is not None}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> PlanError:
        return cls(str(obj["message"]), obj.get("repo"), str(obj.get("kind", "refresh")), obj.get("where"),
                   obj.get("hint"))


@dataclass(frozen=True)
class RepoSummary:
    """How a repository appears in the rendering: ``+`` new, ``~`` changed, ``-`` deleted,
    ``=`` unchanged; ``label`` is ``hub: library/busybox`` for synced repositories."""

    id: str
    status: str
    label: str | None = None
    publish_name: str | None = None
    #: why this repository could not be planned (its upstream refresh failed)
    error: str | None = None
    #: which tag filters decided ("12 upstream tags, 5 selected: semver ^1.2, newest 5")
    selection: str | None = None
    #: what the reviewer should know that is not an action (tags kept outside the newest
    #: N, tags not synced for their platform)
    notes: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {k: v for k, v in (("id", self.id), ("status", self.status), ("label", self.label),
                                                 ("publish_name", self.publish_name), ("error", self.error),
                                                 ("selection", self.selection)) if v is not None}
        if self.notes:
            out["notes"] = list(self.notes)
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> RepoSummary:
        return cls(**{**obj, "notes": tuple(obj.get("notes", ()))})


@dataclass(frozen=True)
class Unmanaged:
    """Content a repository holds that repos.yaml does not declare, kept because prune is off."""

    repo: str
    tags: tuple[str, ...] = ()
    untagged_manifests: int = 0
    untagged_indexes: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"repo": self.repo, "tags": list(self.tags), "untagged_manifests": self.untagged_manifests,
                "untagged_indexes": self.untagged_indexes}


@dataclass(frozen=True)
class FailedTag:
    """An upstream tag the plan could not resolve or fetch the manifests of (malformed,
    of a type we cannot store, failing every retry). Only this tag fails: it keeps what
    it pointed at, a mirror never removes it, the rest of the plan is applied, and apply
    reports it as failed (exit 1, journal ``partial``). A tag the repository's ``verify:``
    policy refuses (``refused``) is reported the same way, but there the whole repository
    is left as it is."""

    repo: str
    tag: str
    error: str
    #: refused by the repository's ``verify:`` policy (its whole repository is not applied)
    refused: bool = False

    @property
    def action_id(self) -> str:
        """The id the sync of this tag would have had (apply reports the failure under it);
        ``REPO/verify/TAG`` for a tag the verify policy refused."""
        return f"{self.repo}/{'verify' if self.refused else Op.SYNC_TAG.value}/{self.tag}"

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"repo": self.repo, "tag": self.tag, "error": self.error}
        if self.refused:
            out["refused"] = True
        return out


@dataclass(frozen=True)
class RefreshInfo:
    refreshed: bool = True
    upstreams: int = 0
    tags: int = 0
    seconds: float = 0.0
    requests: int = 0

    def to_json(self) -> dict[str, Any]:
        return {"refreshed": self.refreshed, "upstreams": self.upstreams, "tags": self.tags,
                "seconds": round(self.seconds, 3), "requests": self.requests}


@dataclass(frozen=True)
class Plan:
    desired_path: str
    desired_digest: str
    store_generation: int
    actions: tuple[Action, ...] = ()
    repositories: tuple[RepoSummary, ...] = ()
    unmanaged: tuple[Unmanaged, ...] = ()
    #: in the store, not in repos.yaml, kept (no --prune-repositories)
    unknown_repositories: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    #: what could not be planned (an upstream refresh failed, a copy of a tag the source
    #: will not have, a name held outside repos.yaml): the plan shows the rest, and apply
    #: refuses it (``errors`` appears in the JSON only when set)
    errors: tuple[PlanError, ...] = ()
    #: upstream tags that could not be planned; only they fail (``failed_tags`` appears
    #: in the JSON only when set)
    failed_tags: tuple[FailedTag, ...] = ()
    targets: tuple[str, ...] = ()
    prune_repositories: bool = False
    refresh: RefreshInfo = field(default_factory=RefreshInfo)
    created: str = ""
    format_version: int = FORMAT_VERSION

    # -- summaries ------------------------------------------------------------------
    def count(self, change: Change) -> int:
        return sum(1 for a in self.actions if a.change is change)

    @property
    def has_changes(self) -> bool:
        return bool(self.actions)

    @property
    def download(self) -> Download:
        total = Download()
        for a in self.actions:
            total = total + a.download
        return total

    def action(self, action_id: str) -> Action:
        return self._by_id[action_id]

    @cached_property
    def _by_id(self) -> dict[str, Action]:
        return {a.id: a for a in self.actions}

    def actions_for(self, repo: str) -> list[Action]:
        return list(self._by_repo.get(repo, ()))

    @cached_property
    def _by_repo(self) -> dict[str, list[Action]]:
        # apply and the renderers ask once per repository: grouped once, not one scan
        # of every action per repository (10,000 repositories x their actions)
        by_repo: dict[str, list[Action]] = {}
        for a in self.actions:
            by_repo.setdefault(a.repo, []).append(a)
        return by_repo

    def summary_json(self) -> dict[str, Any]:
        d = self.download
        return {"add": self.count(Change.CREATE), "change": self.count(Change.UPDATE),
                "remove": self.count(Change.DELETE), "download_blobs": d.blobs, "download_bytes": d.bytes,
                "download_manifests": d.manifests}

    # -- (de)serialisation ----------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format_version": self.format_version,
            "created": self.created,
            "desired": {"path": self.desired_path, "digest": self.desired_digest},
            "store_generation": self.store_generation,
            "targets": list(self.targets),
            "prune_repositories": self.prune_repositories,
            "refresh": self.refresh.to_json(),
            "summary": self.summary_json(),
            "repositories": [r.to_json() for r in self.repositories],
            "actions": [a.to_json() for a in self.actions],
            "unmanaged": [u.to_json() for u in self.unmanaged],
            "unknown_repositories": list(self.unknown_repositories),
            "warnings": list(self.warnings),
            **({"errors": [e.to_json() for e in self.errors]} if self.errors else {}),
            **({"failed_tags": [f.to_json() for f in self.failed_tags]} if self.failed_tags else {}),
        }

    def dumps(self, key: bytes | None = None) -> str:
        """The saved form: the JSON document sealed with its ``digest`` (and an ``hmac``
        with ``key``), see ``plan.seal``."""
        return json.dumps(seal.seal(self.to_json(), key), indent=2, sort_keys=True) + "\n"

    def digest(self) -> str:
        """sha256 of the canonical JSON: what the journal records and apply names."""
        return seal.body_digest(self.to_json())

    @classmethod
    def from_json(cls, obj: Mapping[str, Any], *, where: str = "plan") -> Plan:
        if not isinstance(obj, Mapping):
            raise InvalidInput(f"{where}: not a saved plan (expected a JSON object)")
        version = obj.get("format_version")
        if version != FORMAT_VERSION:
            raise InvalidInput(f"{where}: plan format_version {version!r} is not supported (this reconciler "
                               f"reads version {FORMAT_VERSION})", hint="make the plan again with this version")
        try:
            return cls(
                desired_path=obj["desired"]["path"],
                desired_digest=obj["desired"]["digest"],
                store_generation=int(obj["store_generation"]),
                actions=tuple(action_from_json(a) for a in obj.get("actions", ())),
                repositories=tuple(RepoSummary.from_json(r) for r in obj.get("repositories", ())),
                unmanaged=tuple(Unmanaged(u["repo"], tuple(u.get("tags", ())), u.get("untagged_manifests", 0),
                                          u.get("untagged_indexes", 0)) for u in obj.get("unmanaged", ())),
                unknown_repositories=tuple(obj.get("unknown_repositories", ())),
                warnings=tuple(obj.get("warnings", ())),
                errors=tuple(PlanError.from_json(e) for e in obj.get("errors", ())),
                failed_tags=tuple(FailedTag(f["repo"], f["tag"], f["error"], bool(f.get("refused", False)))
                                  for f in obj.get("failed_tags", ())),
                targets=tuple(obj.get("targets", ())),
                prune_repositories=bool(obj.get("prune_repositories", False)),
                refresh=RefreshInfo(**obj.get("refresh", {})),
                created=str(obj.get("created", "")),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"{where}: malformed saved plan: {exc}",
                               hint="make the plan again with `reconciler plan --out`") from exc

    @classmethod
    def read(cls, path: str | Path, *, key: bytes | None = None) -> Plan:
        """``loads`` of the file at ``path`` (``InvalidInput`` when it cannot be read)."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise InvalidInput(f"cannot read the plan {path}: {exc.strerror or exc}",
                               hint="save one with `reconciler plan -f repos.yaml --out PLAN`") from exc
        return cls.loads(text, where=str(path), key=key)

    @classmethod
    def loads(cls, text: str, *, where: str = "plan", key: bytes | None = None) -> Plan:
        """A saved plan, refused (``PlanTampered``) unless its digest, and with ``key``
        its HMAC, match its content: checked before anything else is read from it."""
        try:
            obj = jsonsafe.loads(text)
        except json.JSONDecodeError as exc:
            raise InvalidInput(f"{where}: not a saved plan: {exc}") from exc
        if isinstance(obj, Mapping) and obj.get("format_version") == FORMAT_VERSION:
            obj = seal.unseal(obj, key, where=where)
        return cls.from_json(obj, where=where)
