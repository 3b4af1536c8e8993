"""Apply's push targets (issue 23): once every repository's new version is committed (and
published), the ``PushTag`` / ``DeletePushedTag`` actions run target by target, several
targets at once (``MAX_PARALLEL_TARGETS``; each with its registry's ``max_concurrency``),
each target through one transfer walk (``ops.push``): the content first, then the tags.
A repository's pushes wait for its own version only, but pushing them all together lets
targets on a slow registry overlap instead of queueing behind each other.

Each target is journaled on its own (``ApplyResult.pushes``: tags moved, blobs uploaded,
mounted or present, manifests put, tags deleted, the error). A failed push fails that
target's actions (those tags moved before the failure are reported done: the target
holds them completely); other targets and repositories go on.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from reconciler.desired.model import PushSpec
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.model.registry import registry_key
from reconciler.ops.push import (
    PushFailed,
    PushOutcome,
    ReferrersOutcome,
    delete_tags,
    push_referrers,
    push_tags,
    seed_mounts,
)
from reconciler.ops.transfer.registrysink import MountIndex
from reconciler.plan.actions import Action, DeletePushedTag, PushAction, PushReferrers, PushTag, RepositoryAction
from reconciler.plan.pushes import PushTargets
from reconciler.registry.protocol import PushTarget

if TYPE_CHECKING:
    from reconciler.apply.runner import Runner

log = logging.getLogger(__name__)

__all__ = ["MAX_PARALLEL_TARGETS", "PUSH_ACTIONS", "Pusher"]

#: push targets pushed at once
MAX_PARALLEL_TARGETS = 4
#: the actions the runner leaves to the ``Pusher``
PUSH_ACTIONS = (PushTag, DeletePushedTag, PushReferrers)


class Pusher:
    """Runs a repository's push actions; ``sources`` lends the push clients when it can
    (``api.UpstreamPool``: ``PushTargets``)."""

    def __init__(self, runner: Runner, sources: object) -> None:
        self.runner = runner
        self.targets = sources if isinstance(sources, PushTargets) else None
        self.mounts = MountIndex()
        self._seeded: set[str] = set()
        self._queued: list[tuple[str, list[PushAction]]] = []
        #: the runner's bookkeeping is not thread-safe: one target reports at a time
        self._lock = threading.Lock()

    def _spec(self, repo: str, a: PushAction) -> PushSpec:
        spec = self.runner.desired.repositories.get(repo)
        for p in spec.push if spec is not None else ():
            if (p.registry.name or registry_key(p.registry.url)) == a.registry and p.name == a.target_name:
                return p
        raise ConfigError(f"{repo}: no push target {a.target} in repos.yaml any more", hint="plan again")

    def take(self, repo: str, actions: list[Action]) -> list[RepositoryAction]:
        """Queue ``repo``'s push actions (``queue``); the others are returned, for the runner."""
        self.queue(repo, [a for a in actions if isinstance(a, (PushTag, DeletePushedTag, PushReferrers))])
        return [a for a in actions if not isinstance(a, (PushTag, DeletePushedTag, PushReferrers))]

    def queue(self, repo: str, actions: list[PushAction]) -> None:
        """``repo``'s push actions, run by ``flush`` once every repository is applied."""
        groups: dict[tuple[str, str], list[PushAction]] = {}
        for a in actions:
            groups.setdefault((a.registry, a.target_name), []).append(a)
        self._queued += [(repo, group) for group in groups.values()]

    def flush(self) -> None:
        """Push every queued target, ``MAX_PARALLEL_TARGETS`` at once; a requested stop
        leaves those not started to the runner (reported skipped)."""
        work, self._queued = self._queued, []
        if not work:
            return
        if len(work) == 1:
            self._target(*work[0])
            return
        with ThreadPoolExecutor(max_workers=min(MAX_PARALLEL_TARGETS, len(work)),
                                thread_name_prefix="apply-push") as pool:
            for future in [pool.submit(self._target, repo, group) for repo, group in work]:
                future.result()
        self.runner.stop.check()

    def _target(self, repo: str, group: list[PushAction]) -> None:
        runner = self.runner
        with self._lock:
            if runner.stop.is_set():
                return  # not started: the runner reports it skipped
            ready = [a for a in group if not runner._blocked(a)]
        if not ready:
            return
        label = ready[0].target
        record: dict[str, object] = {}
        done: list[PushAction] = []
        failed: list[tuple[PushAction, ReconcilerError]] = []
        try:
            spec = self._spec(repo, ready[0])
            if self.targets is None:
                raise ConfigError(f"{repo}: no registry client to push to {label}")
            client = self.targets.push_target(spec.registry)
            with self._lock:
                key = registry_key(spec.registry.url)
                if key not in self._seeded:  # blobs of what we pushed there before, to mount
                    seed_mounts(runner.store, self.mounts, key)
                    self._seeded.add(key)
        except ReconcilerError as exc:
            record["error"] = exc.message
            failed = [(a, exc) for a in ready]
        else:
            self._push(repo, spec, client, label, ready, record, done, failed)
        with self._lock:
            runner.result.pushes[label] = record
            for a in done:
                runner._done(a)
            for a, error in failed:
                runner._failed(a, error)
        log.info("%s: %s", label, record)

    def _push(self, repo: str, spec: PushSpec, client: PushTarget, label: str, ready: list[PushAction],
              record: dict[str, object], done: list[PushAction], failed: list[tuple[PushAction, ReconcilerError]],
              ) -> None:
        runner = self.runner
        pushes = [a for a in ready if isinstance(a, PushTag)]
        if pushes:
            outcome = PushOutcome()
            report = runner.progress
            try:
                outcome = push_tags(runner.store, runner.store.version_get(repo), client, spec.name,
                                    {a.tag: a.digest for a in pushes}, jobs=spec.registry.max_concurrency,
                                    mounts=self.mounts, stop=runner.stop,
                                    progress=(lambda e: report(f"{repo} -> {label}", e)) if report else None)
                done += pushes
            except PushFailed as exc:
                outcome = exc.outcome
                record["error"] = exc.message
                done += [a for a in pushes if a.tag in outcome.tagged]  # complete at the target
                failed += [(a, exc) for a in pushes if a.tag not in outcome.tagged]
            except ReconcilerError as exc:
                record["error"] = exc.message
                failed += [(a, exc) for a in pushes]
            record.update(outcome.to_json())
        # referrers after the tags (as a signer pushes a signature after its image)
        referred = ReferrersOutcome()
        for a in ready:
            if not isinstance(a, PushReferrers):
                continue
            if set(a.depends_on) & {f.id for f, _ in failed}:
                failed.append((a, ReconcilerError(f"not pushed: the push of {a.tag} to {label} failed")))
                continue
            try:
                got = push_referrers(runner.store, runner.store.version_get(repo), client, spec.name, a.digests,
                                     jobs=spec.registry.max_concurrency, mounts=self.mounts, stop=runner.stop)
                referred.pushed, referred.indexes = referred.pushed + got.pushed, referred.indexes + got.indexes
                referred.listed_by = got.listed_by or referred.listed_by
                done.append(a)
            except ReconcilerError as exc:
                record.setdefault("error", exc.message)
                failed.append((a, exc))
        if any(isinstance(a, PushReferrers) for a in ready):
            record.update(referred.to_json())
        deleted: list[str] = []
        left: list[str] = []
        for a in ready:
            if not isinstance(a, DeletePushedTag):
                continue
            try:
                gone, kept = delete_tags(runner.store, client, spec.name, {a.tag: a.old_digest})
                deleted, left = deleted + gone, left + kept
                done.append(a)
            except ReconcilerError as exc:
                record.setdefault("error", exc.message)
                failed.append((a, exc))
        if deleted:
            record["deleted"] = deleted
        if left:  # moved at the target since the plan: not ours any more
            record["left_alone"] = left
