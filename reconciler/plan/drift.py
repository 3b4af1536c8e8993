"""Drift: what differs between the store and repos.yaml, grouped by why.

A plan already says *what* apply would change; drift says *why* each change is needed:

- ``upstream``: a synced tag appeared, moved or vanished upstream (or a copy or pin
  follows such a tag);
- ``manual``: a one-off command (``tag``, ``copy``, ``remove``, ``sync``, ``upload``,
  ``publish``, ``repo rollback``, ``repo delete``) changed the repository since the last
  apply, and the apply would undo it;
- ``desired``: repos.yaml changed since the last apply (or was never applied, or the last
  apply did not finish);
- ``store``: content the store lists is missing or corrupt (``store check``).

The evidence is data the store keeps anyway: each version's ``operation`` (apply makes
``apply sha256:...``, one-off commands name themselves), and the journal, where each
apply records a short fingerprint of every repository's declaration
(``spec_fingerprints``). ``classify`` is pure; ``gather_manual`` reads the history.
"""

from __future__ import annotations

import dataclasses
import enum
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from reconciler.desired.model import DesiredState, RepositorySpec
from reconciler.model import Digest
from reconciler.model.reports import JournalEntry, Problem
from reconciler.model.repository import version_ranges
from reconciler.plan import model as pm
from reconciler.plan.actions import Action, DeletePushedTag, DropVersions, Op, PushReferrers, PushTag, Upload, V1Upload
from reconciler.plan.model import Plan
from reconciler.store.protocol import Store

UPSTREAM, MANUAL, DESIRED, STORE = "upstream", "manual", "desired", "store"
CAUSES = (UPSTREAM, MANUAL, DESIRED, STORE)
#: how many journal entries drift reads back to find each repository's last apply
JOURNAL_DEPTH = 200
_UPSTREAM_REASONS = {pm.NEW_UPSTREAM_TAG, pm.TAG_MOVED_UPSTREAM, pm.TAG_GONE_UPSTREAM, pm.REFERRERS_UPSTREAM}
#: ``latest: N``: newer upstream versions outranked a tag (an upstream cause too)
_OUTRANKED = pm.OUTRANKED.split("{", 1)[0]


#: spec fields added after fingerprints were first journaled: left out while they hold
#: their default, so that upgrading reconciler does not look like a changed repos.yaml
_LATER_FIELDS = frozenset({"platforms", "semver", "semver_suffix", "prereleases", "latest", "sort", "verify"})
#: the same for fields whose default comes from a factory: (type, field)
_LATER_MADE_FIELDS = frozenset({("CopySpec", "referrers")})


def _later_default(value: Any, f: dataclasses.Field[Any]) -> bool:
    """Whether ``f`` of ``value`` is a field added later that holds its default."""
    if f.name in _LATER_FIELDS and getattr(value, f.name) == f.default:
        return True
    made = f.default_factory
    return ((type(value).__name__, f.name) in _LATER_MADE_FIELDS and made is not dataclasses.MISSING
            and getattr(value, f.name) == made())


def _canonical(value: Any, base: Path) -> Any:
    """A JSON-able form of a spec value; paths relative to the desired file's folder, so
    the same repos.yaml in another checkout has the same fingerprint."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        # private fields (TagFilter's compiled patterns) are derived from the public ones
        return {f.name: _canonical(getattr(value, f.name), base) for f in dataclasses.fields(value)
                if not f.name.startswith("_") and not _later_default(value, f)}
    if isinstance(value, Path):
        try:
            return value.relative_to(base).as_posix()
        except ValueError:
            return value.as_posix()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): _canonical(v, base) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, (list, tuple, frozenset, set)):
        items = [_canonical(v, base) for v in value]
        return sorted(items, key=json.dumps) if isinstance(value, (frozenset, set)) else items
    if isinstance(value, (str, int, float, bool)) or value is None:
        return value
    return str(value)  # Digest, TagFilter's compiled parts: their text is their identity


def spec_fingerprint(spec: RepositorySpec, base: Path) -> str:
    """16 hex digits of sha256 over the repository's resolved declaration."""
    text = json.dumps(_canonical(spec, base), sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def spec_fingerprints(desired: DesiredState, repo_ids: Iterable[str]) -> dict[str, str]:
    """Fingerprints of the declared repositories among ``repo_ids`` (the journal keeps them)."""
    base = Path(desired.path).resolve().parent
    return {r: spec_fingerprint(desired.repositories[r], base) for r in repo_ids if r in desired.repositories}


@dataclass(frozen=True)
class LastApply:
    """What the journal says about earlier applies: per repository, the fingerprint of its
    declaration when an apply last covered it; the desired digest of the latest apply."""

    entry_id: int | None = None
    desired_digest: str | None = None
    result: str | None = None
    repos: Mapping[str, str] = field(default_factory=dict)


def last_apply(entries: Sequence[JournalEntry]) -> LastApply:
    """``entries`` newest first (``Store.journal_list``); entries still running are skipped."""
    repos: dict[str, str] = {}
    newest: JournalEntry | None = None
    for e in entries:
        if e.result == "running":
            continue
        fps = e.details.get("desired_repos")
        if not isinstance(fps, Mapping):
            continue  # an entry written before fingerprints were journaled
        newest = newest or e
        for repo, fp in fps.items():
            repos.setdefault(str(repo), str(fp))
    if newest is None:
        return LastApply()
    digest = newest.details.get("desired_digest")
    return LastApply(newest.id, str(digest) if digest else None, newest.result, repos)


@dataclass(frozen=True)
class ManualChange:
    """One-off versions of one repository since its last apply-made version, and what
    they changed (tag names whose target or presence differs; untagged content)."""

    repo: str
    versions: tuple[tuple[int, str, str], ...]  # (number, operation, created)
    tags: frozenset[str] = frozenset()
    content: bool = False

    def describe(self) -> str:
        ops = ", ".join(f"version {n} `{op}` ({created[:19]})" for n, op, created in self.versions[-3:])
        more = f" and {len(self.versions) - 3} more" if len(self.versions) > 3 else ""
        return f"made by hand since the last apply: {ops}{more}"


def gather_manual(store: Store, repo_ids: Iterable[str]) -> dict[str, ManualChange]:
    """For each repository, the versions one-off commands made after its last apply-made
    version (version 0, the creation, counts as a boundary), with the tags they changed."""
    out: dict[str, ManualChange] = {}
    for repo in repo_ids:
        if store.repository_find(repo) is None:
            continue
        versions = store.version_list(repo)
        manual = []
        for v in reversed(versions):
            if v.number == 0 or v.operation.startswith("apply"):
                break
            manual.append(v)
        if not manual:
            continue
        # the version before the first hand-made one (retention may have dropped some: the
        # newest one that is left; none left: compare from the oldest hand-made version)
        older = [v.number for v in versions if v.number < manual[-1].number]
        boundary = older[-1] if older else manual[-1].number
        before, now = store.version_get(repo, boundary), store.version_get(repo)
        tags = {n for n in set(before.tags) | set(now.tags)
                if (before.tags[n].digest if n in before.tags else None)
                != (now.tags[n].digest if n in now.tags else None)}
        content = (before.content.manifests, before.content.indexes) != (now.content.manifests, now.content.indexes)
        out[repo] = ManualChange(repo, tuple((v.number, v.operation, v.created) for v in reversed(manual)),
                                 frozenset(tags), content)
    return out


@dataclass(frozen=True)
class DriftItem:
    cause: str
    repo: str
    #: the plan action that would correct it (None for store problems)
    action: str | None
    #: what differs, as the plan says it (``~ tag latest  tag moved upstream``)
    what: str
    #: why this cause
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"cause": self.cause, "repo": self.repo, "action": self.action, "what": self.what, "why": self.why}


@dataclass(frozen=True)
class DriftReport:
    items: tuple[DriftItem, ...] = ()
    desired_path: str = ""
    desired_digest: str = ""
    last_apply: LastApply = field(default_factory=LastApply)
    #: repositories that could not be compared (an upstream refresh failed)
    errors: tuple[str, ...] = ()

    @property
    def has_drift(self) -> bool:
        return bool(self.items)

    def by_cause(self) -> dict[str, list[DriftItem]]:
        return {c: [i for i in self.items if i.cause == c] for c in CAUSES}

    def counts(self) -> dict[str, int]:
        return {c: len(items) for c, items in self.by_cause().items()}

    def to_json(self) -> dict[str, Any]:
        return {"drift": self.has_drift, "desired": {"path": self.desired_path, "digest": self.desired_digest},
                "last_apply": {"journal_id": self.last_apply.entry_id, "result": self.last_apply.result,
                               "desired_digest": self.last_apply.desired_digest},
                "counts": self.counts(),
                "causes": {c: [i.to_json() for i in items] for c, items in self.by_cause().items()},
                "errors": list(self.errors)}


def describe(a: Action) -> str:
    """One short line for an action: symbol, kind, subject, reason."""
    file = a.file if isinstance(a, (Upload, V1Upload)) else None
    versions = a.versions if isinstance(a, DropVersions) else ()
    subject = a.tag or a.publish_name or file or (f"{a.kind}s" if a.kind else "") or version_ranges(versions)
    digests = " -> ".join(d.short() for d in (a.old_digest, a.digest) if d is not None)
    parts = [a.change.value, a.op.value.replace("_", " "), subject, digests]
    return " ".join(p for p in parts if p) + f" ({a.reason})"


class _Classifier:
    def __init__(self, plan: Plan, fingerprints: Mapping[str, str], last: LastApply,
                 manual: Mapping[str, ManualChange]) -> None:
        self.plan, self.fps, self.last, self.manual = plan, fingerprints, last, manual
        self.causes: dict[str, tuple[str, str]] = {}

    def spec_changed(self, repo: str) -> str | None:
        """Why the repository's declaration counts as changed since the last apply, or None."""
        if repo not in self.fps:
            return None
        before = self.last.repos.get(repo)
        if before is None:
            return "not applied yet: no apply has covered this repository's declaration"
        if before != self.fps[repo]:
            return f"its declaration in repos.yaml changed since the last apply ({before[:8]} -> {self.fps[repo][:8]})"
        return None

    def cause(self, a: Action) -> tuple[str, str]:
        if a.id not in self.causes:
            self.causes[a.id] = self._cause(a)
        return self.causes[a.id]

    def _inherited(self, a: Action) -> tuple[str, str] | None:
        """The cause of what ``a`` depends on in other repositories (a copy or pin of a
        tag that moved upstream is upstream drift too)."""
        for dep in a.depends_on:
            try:
                other = self.plan.action(dep)
            except KeyError:
                continue
            cause, why = self.cause(other)
            if cause in (UPSTREAM, MANUAL) and (other.repo != a.repo or other.op is not Op.CREATE_REPOSITORY):
                return cause, f"follows {other.id}: {why}"
        return None

    def _cause(self, a: Action) -> tuple[str, str]:
        repo, manual = a.repo, self.manual.get(a.repo)
        if a.op is Op.CREATE_REPOSITORY:
            if repo in self.last.repos:
                return MANUAL, "the repository was applied before and is gone: deleted by hand (`repo delete`)"
            return DESIRED, self.spec_changed(repo) or "declared in repos.yaml"
        if a.op is Op.DELETE_REPOSITORY:
            if repo in self.last.repos:
                return DESIRED, "removed from repos.yaml since the last apply"
            return MANUAL, "not declared in repos.yaml and never applied: created by a one-off command"
        if a.op in (Op.PUBLISH, Op.UNPUBLISH):
            return self._publication(a)
        if manual is not None and ((a.tag is not None and a.tag in manual.tags)
                                   or (a.tag is None and manual.content and a.op in (
                                       Op.COPY_CONTENT, Op.REMOVE_CONTENT, Op.UPLOAD))):
            return MANUAL, manual.describe()
        changed = self.spec_changed(repo)
        if a.reason in _UPSTREAM_REASONS or a.reason.startswith(_OUTRANKED):
            if changed and a.reason in (pm.NEW_UPSTREAM_TAG, pm.REFERRERS_UPSTREAM):
                return DESIRED, changed
            return UPSTREAM, f"{a.reason} ({a.repo}'s feed)"
        if changed:
            return DESIRED, changed
        inherited = self._inherited(a)
        if inherited:
            return inherited
        if a.op is Op.DROP_VERSIONS:
            return DESIRED, (f"{a.reason}: the repository has older versions than it keeps (a grace period "
                             "ended, or a command added versions)")
        if isinstance(a, Upload):
            return DESIRED, f"the upload file {a.file} is not in the repository as repos.yaml declares it"
        if isinstance(a, (PushTag, DeletePushedTag)) and self.last.result in (None, "ok") and self.last.repos:
            return MANUAL, f"{a.target} does not hold {a.tag} as the last apply left it (changed at the target)"
        if isinstance(a, PushReferrers) and self.last.result in (None, "ok") and self.last.repos:
            return MANUAL, f"{a.target} lacks referrers of {a.tag} the last apply pushed (changed at the target)"
        if self.last.result not in (None, "ok"):
            return DESIRED, f"not applied yet: the last apply (journal {self.last.entry_id}) ended {self.last.result}"
        return DESIRED, "declared in repos.yaml and not in the store"

    def _publication(self, a: Action) -> tuple[str, str]:
        changed = self.spec_changed(a.repo)
        if changed:
            return DESIRED, changed
        if "rolled back by hand" in a.reason:
            return MANUAL, ("the publication was rolled back by hand (`repo rollback`) since the last apply; "
                            "the apply publishes the latest version again")
        if a.reason == "new version":
            others = [self.cause(o) for o in self.plan.actions_for(a.repo) if o.op not in (Op.PUBLISH, Op.UNPUBLISH)]
            if others:
                return others[0][0], f"publishes the new version: {others[0][1]}"
        return MANUAL, "the publication was changed by hand (`publish`, `unpublish`); the apply restores repos.yaml's"


def classify(plan: Plan, fingerprints: Mapping[str, str], last: LastApply,
             manual: Mapping[str, ManualChange], problems: Sequence[Problem] = ()) -> DriftReport:
    """Every plan action as a ``DriftItem`` with its cause, plus store problems."""
    c = _Classifier(plan, fingerprints, last, manual)
    items = []
    for a in plan.actions:
        cause, why = c.cause(a)
        items.append(DriftItem(cause, a.repo, a.id, describe(a), why))
    for p in problems:
        repo = p.subject.split("@", 1)[0] if "@" in p.subject and not Digest.is_valid(p.subject) else ""
        items.append(DriftItem(STORE, repo, None, f"{p.kind} {p.subject}", p.message))
    return DriftReport(tuple(items), plan.desired_path, plan.desired_digest, last,
                       tuple(str(e) for e in plan.errors))


def drift_for(store: Store, desired: DesiredState, plan: Plan, problems: Sequence[Problem] = ()) -> DriftReport:
    """The drift ``plan`` shows, with the evidence read from ``store`` (journal, history)."""
    return classify(plan, spec_fingerprints(desired, desired.repositories),
                    last_apply(store.journal_list(JOURNAL_DEPTH)),
                    gather_manual(store, sorted({a.repo for a in plan.actions})), problems)
