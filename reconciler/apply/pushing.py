"""Apply's push targets (issue 23): after a repository's new version is committed (and
published), its ``PushTag`` / ``DeletePushedTag`` actions run target by target, each
target through one transfer walk (``ops.push``): the content first, then the tags.

Each target is journaled on its own (``ApplyResult.pushes``: tags moved, blobs uploaded,
mounted or present, manifests put, tags deleted, the error). A failed push fails that
target's actions (those tags moved before the failure are reported done: the target
holds them completely); other targets and repositories go on.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from reconciler.desired.model import PushSpec
from reconciler.errors import ConfigError, ReconcilerError
from reconciler.model.registry import registry_key
from reconciler.ops.push import PushFailed, PushOutcome, delete_tags, push_tags, seed_mounts
from reconciler.ops.transfer.registrysink import MountIndex
from reconciler.plan.actions import DeletePushedTag, PushAction, PushTag
from reconciler.plan.pushes import PushTargets

if TYPE_CHECKING:
    from reconciler.apply.runner import Runner

log = logging.getLogger(__name__)


class Pusher:
    """Runs a repository's push actions; ``sources`` lends the push clients when it can
    (``api.UpstreamPool``: ``PushTargets``)."""

    def __init__(self, runner: Runner, sources: object) -> None:
        self.runner = runner
        self.targets = sources if isinstance(sources, PushTargets) else None
        self.mounts = MountIndex()
        self._seeded: set[str] = set()

    def _spec(self, repo: str, a: PushAction) -> PushSpec:
        spec = self.runner.desired.repositories.get(repo)
        for p in spec.push if spec is not None else ():
            if (p.registry.name or registry_key(p.registry.url)) == a.registry and p.name == a.target_name:
                return p
        raise ConfigError(f"{repo}: no push target {a.target} in repos.yaml any more", hint="plan again")

    def run(self, repo: str, actions: list[PushAction]) -> None:
        groups: dict[tuple[str, str], list[PushAction]] = {}
        for a in actions:
            groups.setdefault((a.registry, a.target_name), []).append(a)
        for group in groups.values():
            self._target(repo, group)

    def _target(self, repo: str, group: list[PushAction]) -> None:
        runner = self.runner
        ready = [a for a in group if not runner._blocked(a)]
        if not ready:
            return
        label = ready[0].target
        record: dict[str, object] = {}
        runner.result.pushes[label] = record
        try:
            spec = self._spec(repo, ready[0])
            if self.targets is None:
                raise ConfigError(f"{repo}: no registry client to push to {label}")
            client = self.targets.push_target(spec.registry)
            key = registry_key(client.base)
            if key not in self._seeded:
                seed_mounts(runner.store, self.mounts, key)
                self._seeded.add(key)
        except ReconcilerError as exc:
            record["error"] = exc.message
            for a in ready:
                runner._failed(a, exc)
            return
        pushes = [a for a in ready if isinstance(a, PushTag)]
        if pushes:
            outcome = PushOutcome()
            try:
                version = runner.store.version_get(repo)
                report = runner.progress
                outcome = push_tags(runner.store, version, client, spec.name, {a.tag: a.digest for a in pushes},
                                    jobs=spec.registry.max_concurrency, mounts=self.mounts, stop=runner.stop,
                                    progress=(lambda e: report(f"{repo} -> {label}", e)) if report else None)
                for a in pushes:
                    runner._done(a)
            except PushFailed as exc:
                outcome = exc.outcome
                record["error"] = exc.message
                for a in pushes:
                    if a.tag in outcome.tagged:
                        runner._done(a)
                    else:
                        runner._failed(a, exc)
            except ReconcilerError as exc:
                record["error"] = exc.message
                for a in pushes:
                    runner._failed(a, exc)
            record.update(outcome.to_json())
        deleted: list[str] = []
        for a in ready:
            if not isinstance(a, DeletePushedTag):
                continue
            try:
                deleted += delete_tags(runner.store, client, spec.name, [a.tag])
                runner._done(a)
            except ReconcilerError as exc:
                record.setdefault("error", exc.message)
                runner._failed(a, exc)
        if deleted:
            record["deleted"] = deleted
        log.info("%s: %s", label, record)
