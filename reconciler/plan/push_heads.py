"""Push targets read early (issue 23): the tag HEADs a plan will send to its push targets,
sent while the upstreams are being refreshed instead of after.

Which tags each target is asked about depends on the plan (``plan.pushes.tags_after``),
but almost always they are the tags the repository holds now: ``EarlyHeads`` asks those
(selected by each target's ``tags``, with cosign's tags and, for ``prune``, the recorded
ones) on a thread of its own as soon as the plan starts, and ``plan_pushes`` asks only
what it still lacks. The answers are as fresh as the plan's other reads (a fraction of a
second older); a failure here is ignored (the plan asks again and reports it). Only HTTP
runs on the thread: the store is read before it starts.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Collection, Mapping

from reconciler.desired.model import DesiredState
from reconciler.model import Digest
from reconciler.model.registry import registry_key
from reconciler.ops.parallel import ItemFailed, run_bounded
from reconciler.plan.push_referrers import with_cosign_tags
from reconciler.registry.protocol import PushTarget
from reconciler.store.protocol import Store

log = logging.getLogger(__name__)

#: targets read at once (as ``plan.pushes.MAX_PARALLEL_TARGETS``)
PARALLEL_TARGETS = 4
#: (the client's id, repository at the target, tag)
HeadKey = tuple[int, str, str]


class EarlyHeads:
    """Tag HEADs at the push targets of ``desired`` (those of ``repo_ids``; None: all),
    asked on a thread; ``known()`` waits for them."""

    def __init__(self, store: Store, desired: DesiredState, targets: object,
                 repo_ids: Collection[str] | None = None) -> None:
        from reconciler.plan.pushes import PushTargets

        self._known: dict[HeadKey, Digest | None] = {}
        work: list[tuple[PushTarget, str, list[str], int]] = []
        if isinstance(targets, PushTargets):
            for repo, spec in sorted(desired.repositories.items()):
                if not spec.push or (repo_ids is not None and repo not in repo_ids):
                    continue
                if store.repository_find(repo) is None:
                    continue
                tags = {t: e.digest for t, e in store.version_get(repo).tags.items()}
                for target in spec.push:
                    asked = with_cosign_tags(target.tags.select(sorted(tags)), tags)
                    if target.prune:
                        asked += [r.tag for r in store.pushed(registry_key(target.registry.url), target.name)]
                    work.append((targets.push_target(target.registry), target.name, sorted(set(asked)),
                                 target.registry.max_concurrency))
        clients = {id(c): c for c, _, _, _ in work}
        #: each client's request count before (the plan counts these requests as its own)
        self.before = {k: c.stats.total for k, c in clients.items()}
        self._thread: threading.Thread | None = None
        if work:
            self._thread = threading.Thread(target=self._run, args=(work,), name="push-heads", daemon=True)
            self._thread.start()

    def _run(self, work: list[tuple[PushTarget, str, list[str], int]]) -> None:
        def one(item: tuple[PushTarget, str, list[str], int]) -> None:
            client, name, tags, jobs = item
            try:
                found = run_bounded(lambda t: client.manifest_exists(name, t), tags, jobs=jobs)
            except ItemFailed as failed:
                log.debug("%s/%s: early HEADs failed (%s); the plan asks again", client.base, name, failed.error)
                return
            self._known.update({(id(client), name, t): d for t, d in found})

        try:
            run_bounded(one, work, jobs=PARALLEL_TARGETS)
        except Exception as exc:  # noqa: BLE001 (nothing may escape a thread; the plan asks again)
            log.debug("early HEADs failed: %s", exc)

    def known(self) -> Mapping[HeadKey, Digest | None]:
        """Every answer heard (waits for the thread)."""
        if self._thread is not None:
            self._thread.join()
        return self._known
