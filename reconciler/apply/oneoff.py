"""Apply a one-off command's one-repository change (``desired.oneoff``) the way
``reconciler apply -f --target ID`` applies a repos.yaml entry: refresh, the same diff,
the same ``Runner``. So a one-off command and the equivalent repos.yaml line leave the same
repository by construction, and this is the one place a one-off command takes the store
lock (``run_one_off``).

What differs from an apply is only what the one-off commands always did differently:

- no journal entry (``reconciler history`` lists applies; ``drift`` calls the versions a
  one-off command makes ``manual`` by their operation, e.g. ``sync``);
- the versions are committed with the command's operation name and no provenance;
- publications are left alone (a one-off command never switched one; the diff's publish
  and unpublish actions are not applied), and so are the feed and upstream name of a
  repository a content command changes (only ``sync`` records them). ``retain_versions``
  is never declared here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypeVar

from reconciler.apply.content_in import Fetcher, Uploader, V1Uploader, default_fetcher, default_uploader
from reconciler.apply.result import ApplyResult
from reconciler.apply.runner import RepoProgress, Runner
from reconciler.apply.session import locked
from reconciler.desired.model import DesiredState
from reconciler.model import Descriptor, Digest, Index, Manifest
from reconciler.model.repository import Repository
from reconciler.ops.state import RepoState
from reconciler.ops.v1.upload import upload_v1
from reconciler.plan.actions import Action, Publish, Unpublish, UpdateRepository
from reconciler.plan.diff import diff, sources_of
from reconciler.plan.model import Plan
from reconciler.plan.observe import Resolver, SourceFactory, default_resolver, refresh
from reconciler.plan.observed import Observed
from reconciler.registry.protocol import ManifestHead, RequestStats, UpstreamSource
from reconciler.store.protocol import Store

T = TypeVar("T")
R = TypeVar("R")


@dataclass(frozen=True)
class OneOffRun:
    """What a one-off change planned and did to its repository: ``before``/``after`` its
    state (None: it did not exist)."""

    repo_id: str
    plan: Plan
    observed: Observed
    result: ApplyResult
    before: RepoState | None
    after: RepoState | None


#: what a one-off command never does to the repositories it changes: switch their
#: publications, or (but ``sync``, which records its feed) rewrite their feed and upstream name
LEFT_ALONE: tuple[type[Action], ...] = (Publish, Unpublish, UpdateRepository)


def plan_change(store: Store, desired: DesiredState, repo_id: str, sources: SourceFactory | None, *,
                resolver: Resolver = default_resolver, publish_grace: bool = True,
                left_alone: tuple[type[Action], ...] = LEFT_ALONE) -> tuple[Plan, Observed]:
    """The plan of a one-off change: targeted at ``repo_id`` (and the repositories it
    reads), without the ``left_alone`` actions (nothing depends on them). Writes nothing."""
    # the repositories it copies or pins from are read too (as ``--target`` widens to them)
    scope = [repo_id, *sorted(sources_of(desired.repositories[repo_id]))]
    observed = refresh(store, desired, sources, upstreams=sources is not None, repo_ids=scope,
                       resolver=resolver, publish_grace=publish_grace)
    plan = diff(desired, observed, targets=(repo_id,), created=datetime.now(UTC).isoformat(timespec="seconds"))
    kept = tuple(a for a in plan.actions if not isinstance(a, left_alone))
    return dataclasses.replace(plan, actions=kept), observed


def run_command(store: Store, command: Callable[[Store], R], *, lock_timeout: float = 60.0) -> R:
    """Run ``command`` under the store lock, waited for ``lock_timeout`` seconds (Ctrl-C ends
    the wait): the one place a one-off command takes the lock. ``command``: the plan and
    apply of ``run_one_off``, or an action of ``apply.commands``."""
    with locked(store, lock_timeout, None):
        return command(store)


def run_one_off(store: Store, change: Callable[[Repository | None], DesiredState], repo_id: str, *, operation: str,
                lock_timeout: float = 60.0,
                sources: SourceFactory | None = None, resolver: Resolver = default_resolver,
                fetcher: Fetcher = default_fetcher, uploader: Uploader = default_uploader,
                v1_uploader: V1Uploader = upload_v1, progress: RepoProgress | None = None,
                check: Callable[[Plan, Observed], None] | None = None,
                left_alone: tuple[type[Action], ...] = LEFT_ALONE, finish: Callable[[OneOffRun], R]) -> R:
    """Plan and apply the one-repository change ``change`` makes of the repository as the
    store has it (None: there is none) under the store lock, as the one-off command
    ``operation``; ``check`` may refuse the plan before anything is applied (raise);
    ``finish`` turns the run into the command's result, still under the lock (it may undo
    what a failed command must not leave behind)."""
    def run(store: Store) -> R:
        found = store.repository_find(repo_id)
        desired = change(found)
        before = RepoState.of(store.version_get(repo_id)) if found is not None else None
        plan, observed = plan_change(store, desired, repo_id, sources, resolver=resolver, left_alone=left_alone)
        if check is not None:
            check(plan, observed)
        result = Runner(plan, store, desired, sources=sources, fetcher=fetcher, uploader=uploader,
                        v1_uploader=v1_uploader, manifests=observed.manifests,
                        progress=progress, one_off=operation).run()
        after = RepoState.of(store.version_get(repo_id)) if store.repository_find(repo_id) is not None else None
        return finish(OneOffRun(repo_id, plan, observed, result, before, after))

    return run_command(store, run, lock_timeout=lock_timeout)


class LentSource:
    """One upstream client lent to the refresh and the apply of a one-off change: its
    ``close()`` does nothing (the command closes the client once, at the end), and its
    request counts are the client's own (the command reports them all)."""

    def __init__(self, source: UpstreamSource) -> None:
        self.source = source
        self.stats: RequestStats = source.stats
        #: where it reads from (errors name the URL)
        self.config = getattr(source, "config", None)

    def tag_list(self, name: str) -> list[str]:
        return self.source.tag_list(name)

    def manifest_head(self, name: str, reference: str) -> ManifestHead | None:
        return self.source.manifest_head(name, reference)

    def manifest_get(self, name: str, reference: str) -> Manifest | Index:
        return self.source.manifest_get(name, reference)

    def blob_fetch(self, name: str, digest: Digest, sink: Callable[[Iterator[bytes]], T]) -> T:
        return self.source.blob_fetch(name, digest, sink)

    def referrers(self, name: str, digest: Digest) -> list[Descriptor] | None:
        return self.source.referrers(name, digest)

    def close(self) -> None:
        """Nothing: the command closes the client it lent."""


def tag_changes(old: RepoState | None, new: RepoState | None) -> tuple[tuple[str, ...], tuple[str, ...],
                                                                        tuple[str, ...]]:
    """(added, moved, removed) tag names from ``old`` to ``new``."""
    a, b = (old.tags if old else {}), (new.tags if new else {})
    added = sorted(n for n in b if n not in a)
    moved = sorted(n for n, e in b.items() if n in a and a[n].digest != e.digest)
    removed = sorted(n for n in a if n not in b)
    return tuple(added), tuple(moved), tuple(removed)
