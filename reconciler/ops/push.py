"""Push tags of a stored repository version to a target registry (issue 23), through the
transfer walk: ``StoreSource`` -> ``RegistrySink``.

Order, as the distribution spec needs it and so the target never shows a tag whose
content is not all there: the blobs the target lacks (HEAD each; mounted from another
repository of the registry we pushed, or uploaded), then child manifests by digest, then
indexes, then the tags. Each tag's push record is written just before the tag moves
(write-ahead, ``store.roles.pushes``). A failure before the tags leaves every tag of the
target where it was; a failure while moving tags leaves those moved moved, the rest
untouched, and says which (``PushFailed.tagged``).

Deleting a tag we pushed (``prune``) goes through ``PushTarget.tag_delete`` (never
another tag on the same manifest), after a HEAD shows the tag is still where we left it
(a saved plan may be applied hours after it was made); its record goes after.

Referrers (``push_referrers``) go after the tags, as a signer pushes a signature after
its image: through the same walk (their blobs, then the manifests by digest, each after
its subject). A registry with the referrers API says so in its answer to each PUT
(``OCI-Subject``); on one without it, the referrers tag schema's index of each subject
(tag ``sha256-<hex>``) is read, the new referrers added, and put again.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from reconciler.errors import ReconcilerError, StalePlan
from reconciler.model import Digest, Index, parse_manifest
from reconciler.model import mediatypes as mt
from reconciler.model.referrers import Referrer, tag_schema_tag
from reconciler.model.registry import registry_key
from reconciler.model.repository import RepositoryVersion
from reconciler.ops.parallel import Progress
from reconciler.ops.stop import StopToken
from reconciler.ops.transfer.adapters import StoreSource
from reconciler.ops.transfer.interface import AnyManifest
from reconciler.ops.transfer.registrysink import MountIndex, RegistrySink
from reconciler.ops.transfer.walk import TransferFailed, TransferPolicy, transfer
from reconciler.registry.protocol import PushTarget, UploadLost
from reconciler.store.protocol import Store

log = logging.getLogger(__name__)


@dataclass
class PushOutcome:
    """What one push to one target did."""

    tagged: list[str] = field(default_factory=list)
    uploaded: int = 0
    uploaded_bytes: int = 0
    mounted: int = 0
    present: int = 0
    manifests: int = 0

    def to_json(self) -> dict[str, object]:
        return {"tags": self.tagged, "blobs_uploaded": self.uploaded, "bytes_uploaded": self.uploaded_bytes,
                "blobs_mounted": self.mounted, "blobs_present": self.present, "manifests_put": self.manifests}


class PushFailed(ReconcilerError):
    """A push failed; ``outcome.tagged`` names the tags that were moved before it did."""

    def __init__(self, message: str, outcome: PushOutcome, *, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.outcome = outcome


def seed_mounts(store: Store, mounts: MountIndex, registry: str) -> None:
    """Tell ``mounts`` which blobs repositories of ``registry`` hold because we pushed
    them there (the closures of recorded tags the store still has)."""
    for record in store.pushed(registry):
        stack, seen = [record.digest], set()
        while stack:
            d = stack.pop()
            if d in seen or not store.manifest_has(d):
                continue
            seen.add(d)
            m = store.manifest_get(d)
            if isinstance(m, Index):
                stack += m.children()
            else:
                mounts.add(registry, record.name, [b.digest for b in m.blobs()])


def push_tags(store: Store, version: RepositoryVersion, target: PushTarget, name: str, tags: Mapping[str, Digest], *,
              jobs: int = 6, mounts: MountIndex | None = None, stop: StopToken | None = None,
              progress: Progress | None = None, attempts: int = 3) -> PushOutcome:
    """Push ``tags`` (tag -> the digest it must have, as planned) of ``version`` to
    repository ``name`` of ``target``. A walk that failed on an upload the registry could
    not resume (``UploadLost``), before any tag moved, is walked again (at most
    ``attempts`` walks): only what the target still lacks goes."""
    key = registry_key(target.base)
    for tag, digest in sorted(tags.items()):
        entry = version.tags.get(tag)
        if entry is None or entry.digest != digest:
            now = entry.digest if entry else "absent"
            raise StalePlan(f"{version.repo_id}: tag {tag} is {now} in version {version.number}, the plan pushes "
                            f"{digest}", hint="plan again")
    source = StoreSource.of_version(store, version)
    if progress is not None:  # the walk's blob phase is an upload here
        report = progress
        progress = lambda e: report(replace(e, phase="upload")) if e.phase == "blobs" else None  # noqa: E731
    manifests: dict[str, AnyManifest] = {t: source.manifest(d) for t, d in tags.items()}

    def record(tag: str, m: AnyManifest) -> None:
        store.push_record(key, name, tag, m.digest)  # before the tag moves: never an unrecorded tag of ours

    outcome = PushOutcome()
    for attempt in range(1, max(1, attempts) + 1):
        sink = RegistrySink(target, name, jobs=jobs, mounts=mounts, tags=manifests, on_tag=record, read=source.manifest)
        try:
            return _push(source, sink, tags, jobs, stop, progress, outcome)
        except PushFailed as exc:
            cause = exc.__cause__
            error = cause.error if isinstance(cause, TransferFailed) else cause
            if attempt >= attempts or not isinstance(error, UploadLost) or outcome.tagged:
                raise  # (other temporary failures were retried by the client already)
            # a blob upload the registry could not resume: walk again (what went up is HEADed, not sent)
            log.warning("%s; pushing again (attempt %d of %d)", exc.message, attempt + 1, attempts)
    raise AssertionError("unreachable")  # pragma: no cover


def _push(source: StoreSource, sink: RegistrySink, tags: Mapping[str, Digest], jobs: int, stop: StopToken | None,
          progress: Progress | None, outcome: PushOutcome) -> PushOutcome:
    target, name = sink.target, sink.name
    try:
        try:
            transfer(source, sink, sorted(set(tags.values()), key=str), policy=source.policy(TransferPolicy(jobs=jobs)),
                     progress=progress, stop=stop, labels={d: t for t, d in sorted(tags.items(), reverse=True)})
            sink.commit()
        finally:
            outcome.tagged += sink.tagged
            outcome.uploaded += len(sink.uploaded)
            outcome.uploaded_bytes += sum(sink.uploaded.values())
            outcome.mounted += len(sink.mounted)
            outcome.present, outcome.manifests = len(sink.present), outcome.manifests + len(sink.put)
    except TransferFailed as exc:
        error = exc.error
        text = error.message if isinstance(error, ReconcilerError) else str(error)
        tag = f"tag {exc.label}: " if exc.label else ""
        raise PushFailed(f"push to {target.base}/{name}: {tag}{exc.kind} {exc.digest}: {text}", outcome,
                         hint=getattr(error, "hint", None) or "no tag was moved at the target; apply again") from exc
    except ReconcilerError as exc:
        moved = f" (moved before it failed: {', '.join(outcome.tagged)})" if outcome.tagged else ""
        raise PushFailed(f"push to {target.base}/{name}: {exc.message}{moved}", outcome, hint=exc.hint) from exc
    return outcome


def delete_tags(store: Store, target: PushTarget, name: str, tags: Mapping[str, Digest]) -> tuple[list[str], list[str]]:
    """Delete ``tags`` (tag -> the digest we pushed, as planned) at the target and forget
    their records; returns (deleted, left alone). A tag the target no longer points at
    that digest (someone pushed it since the plan) is left alone and no longer ours: its
    record goes too."""
    key = registry_key(target.base)
    done, left = [], []
    for tag, digest in sorted(tags.items()):
        now = target.manifest_exists(name, tag)
        if now == digest:
            target.tag_delete(name, tag)
            done.append(tag)
        elif now is not None:
            log.warning("%s/%s: %s now points at %s, not %s as we pushed it; left alone", target.base, name, tag,
                        now, digest)
            left.append(tag)
        store.push_record(key, name, tag, None)
    return done, left


@dataclass
class ReferrersOutcome:
    """What pushing referrers to one target did."""

    pushed: int = 0
    #: how the target lists them: ``api`` (the referrers API), ``tag schema`` (indexes we updated)
    listed_by: str = ""
    indexes: int = 0

    def to_json(self) -> dict[str, object]:
        return {"referrers_pushed": self.pushed, "referrers_listed_by": self.listed_by,
                "referrer_indexes_put": self.indexes}


def push_referrers(store: Store, version: RepositoryVersion, target: PushTarget, name: str,
                   digests: Sequence[Digest], *, jobs: int = 6, mounts: MountIndex | None = None,
                   stop: StopToken | None = None, progress: Progress | None = None) -> ReferrersOutcome:
    """Push the referrer manifests ``digests`` of ``version`` (each after its subject, as
    planned) to ``name`` at ``target`` and make the target list them (see the module doc)."""
    held = version.content.manifests | version.content.indexes
    gone = [d for d in digests if d not in held]
    if gone:
        raise StalePlan(f"{version.repo_id}: version {version.number} no longer holds the referrer {gone[0]} "
                        "the plan pushes", hint="plan again")
    source = StoreSource.of_version(store, version)
    sink = RegistrySink(target, name, jobs=jobs, mounts=mounts)
    try:
        transfer(source, sink, list(digests), policy=source.policy(TransferPolicy(jobs=jobs)), progress=progress,
                 stop=stop)
    except TransferFailed as exc:
        error = exc.error
        text = error.message if isinstance(error, ReconcilerError) else str(error)
        raise ReconcilerError(f"push to {target.base}/{name}: referrer: {exc.kind} {exc.digest}: {text}",
                              hint=getattr(error, "hint", None) or "apply again") from exc
    outcome = ReferrersOutcome(pushed=len(sink.put))
    if sink.listed:
        outcome.listed_by = "api"
        return outcome
    manifests = [source.manifest(d) for d in digests]
    by_subject: dict[Digest, list[AnyManifest]] = {}
    for m in manifests:
        if m.subject is not None:
            by_subject.setdefault(m.subject.digest, []).append(m)
    if not by_subject:
        return outcome
    if not sink.put and target.referrers(name, next(iter(by_subject))) is not None:
        outcome.listed_by = "api"  # nothing was put (all there): the registry lists them itself
        return outcome
    outcome.listed_by = "tag schema"
    for subject, referrers in by_subject.items():
        if _list_in_tag_schema(target, name, subject, referrers):
            outcome.indexes += 1
    return outcome


def _list_in_tag_schema(target: PushTarget, name: str, subject: Digest, referrers: Sequence[AnyManifest]) -> bool:
    """Add ``referrers`` to the tag-schema index of ``subject`` at the target (kept as it
    is otherwise); returns whether it was put."""
    tag = tag_schema_tag(subject)
    old = target.manifest_read(name, tag)
    entries: list[object] = []
    if isinstance(old, Index):
        doc = json.loads(old.raw)
        entries = list(doc.get("manifests") or [])
    elif old is not None:
        log.warning("%s/%s: %s is not an index; replacing it with the referrers index", target.base, name, tag)
    listed = {str(e.get("digest")) for e in entries if isinstance(e, dict)}
    new = [Referrer.of(m).to_json() for m in referrers if str(m.digest) not in listed]
    if not new:
        return False
    raw = json.dumps({"schemaVersion": 2, "mediaType": mt.OCI_INDEX, "manifests": entries + new},
                     separators=(",", ":")).encode()
    index = parse_manifest(raw, mt.OCI_INDEX)
    target.manifest_put(name, tag, index)
    return True
