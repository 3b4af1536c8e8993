"""Apply: execute a ``Plan`` against the store, exactly as reviewed.

- Under the store's exclusive lock; a saved plan whose store generation, desired-file
  digest or upload files changed is refused (``StalePlan``) naming what changed.
- Content first: every repository's sync actions are fetched in ONE ``fetch_content``
  call per repository (manifests, then all missing blobs in one bounded pool), several
  repositories at once (``parallel_repos``), sharing in-flight blob downloads. Fetched
  content is invisible until a version references it, so this changes nothing a client
  sees. A repository whose batch fails falls back to fetching tag by tag, so one bad tag
  fails only its own action.
- Repositories in the plan's order (sources before targets). For each: repository
  actions, then every content action transforms one ``RepoState`` (the same
  ``plan.steps`` the diff used; content is fetched or uploaded into the store first, where
  it stays invisible until referenced), then ONE ``version_commit``, then the
  publication switch. So a client sees the old version or the new one, never a mix.
- A publish name moving between repositories (``release_from``/``handover`` in the plan)
  is switched with its group in one transaction, once every member is ready
  (``apply.publications``).
- A failed action marks everything that depends on it skipped; independent actions
  still run (``--keep-going`` semantics). The result lists each action's outcome. A tag
  the plan could not resolve (``Plan.failed_tags``) is reported as a failed action too:
  the rest is applied, the journal says ``partial`` and the exit code is 1.
- A requested stop (``ops.stop.StopToken``: SIGINT/SIGTERM from the CLI, the apply lock
  lost, see ``apply.stop``) is checked before every repository, download, store write and
  version commit; downloads in flight are abandoned, not waited for. What is left is
  skipped, ``stopped`` in the result says why, and the journal entry is ``interrupted``.
- Every apply is journaled (``journal_start``/``journal_finish``) with a summary of what it
  did (``ApplyResult.journal``; a one-off command's run, ``one_off``, is not: ``apply.oneoff``);
  entries left ``running`` by a killed apply are closed as ``interrupted`` by the next one.
- Re-running after a crash converges: content is global and idempotent to store,
  versions commit atomically, and the next plan starts from whatever was committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from reconciler.apply import publications, retain
from reconciler.apply.checks import check_complete
from reconciler.apply.content_in import Fetcher, Uploader, V1Uploader, default_fetcher, default_uploader, upload_step
from reconciler.apply.content_in import fetched_digests as _fetched
from reconciler.apply.observer import Observer, current
from reconciler.apply.result import DONE, FAILED, NOT_STARTED, SKIPPED, ActionResult, ApplyResult
from reconciler.apply.stop import StoppingStore
from reconciler.desired.model import DesiredState
from reconciler.errors import Interrupted, RateLimited, ReconcilerError
from reconciler.model import Digest, Index, Manifest
from reconciler.model.content import ContentSet
from reconciler.model.repository import RepositoryVersion
from reconciler.ops.graph import load_graph, with_closure
from reconciler.ops.parallel import Progress, ProgressEvent
from reconciler.ops.publish import publish as publish_op
from reconciler.ops.publish import unpublish as unpublish_op
from reconciler.ops.state import RepoState
from reconciler.ops.stop import StopToken, wait_all
from reconciler.ops.transfer.walk import InFlight
from reconciler.ops.v1.sync import v1_sync
from reconciler.ops.v1.upload import upload_v1
from reconciler.plan.actions import (
    Action,
    ContentAction,
    CreateRepository,
    DeleteRepository,
    DropVersions,
    PublicationAction,
    Publish,
    SyncReferrers,
    SyncTag,
    Unpublish,
    UpdateRepository,
    Upload,
    V1Action,
    V1Sync,
    V1Upload,
    content_roots,
)
from reconciler.plan.drift import spec_fingerprints
from reconciler.plan.model import Plan
from reconciler.plan.observe import SourceFactory, upstream_name
from reconciler.plan.steps import run_step
from reconciler.plan.v1refresh import V1SourceFactory
from reconciler.registry.protocol import UpstreamSource
from reconciler.store.protocol import Store

log = logging.getLogger(__name__)

#: (repository id, event) for every progress event of that repository's fetch
RepoProgress = Callable[[str, ProgressEvent], None]

#: at most this many repositories fetch their content at once (each with its feed's jobs)
MAX_PARALLEL_REPOS = 4


class Runner:
    def __init__(self, plan: Plan, store: Store, desired: DesiredState, *, sources: SourceFactory | None = None,
                 fetcher: Fetcher = default_fetcher, uploader: Uploader = default_uploader,
                 command: str = "apply", observer: Observer | None = None, progress: RepoProgress | None = None,
                 parallel_repos: int = MAX_PARALLEL_REPOS,
                 manifests: Mapping[Digest, Manifest | Index] | None = None,
                 v1_sources: V1SourceFactory | None = None, stop: StopToken | None = None,
                 skip_unavailable: bool = False, provenance: Mapping[str, str] | None = None,
                 one_off: str | None = None, v1_uploader: V1Uploader = upload_v1) -> None:
        self.plan, self.desired = plan, desired
        #: the one-off command run (``apply.oneoff``): no journal entry; its versions' operation, no provenance
        self.one_off = one_off
        #: recorded with every version this apply makes, and in its journal entry
        #: (``git_commit`` from ``reconciler watch``; the desired file's digest always)
        self.provenance = {"desired_digest": plan.desired_digest, **(provenance or {})}
        #: asked to stop (SIGINT/SIGTERM, a lost lock): checked before each download and write
        self.stop = stop if stop is not None else StopToken()
        self.skip_unavailable = skip_unavailable
        #: sees the store this apply writes through and the points it passes (``apply.observer``)
        self.observer = observer if observer is not None else current()
        inner = self.observer.store(store)
        # every write and every download checks the stop token (and the lock) first
        self.store: Store = StoppingStore(inner, self.stop, store)  # type: ignore[assignment]
        self.raw_store = store
        self.sources, self.fetcher, self.uploader = sources, fetcher, uploader
        self.v1_sources, self.v1_uploader = v1_sources, v1_uploader
        self.command = command
        self.result = ApplyResult(plan.digest())
        self.bad: set[str] = set()  # failed or skipped action ids
        self.progress = progress
        #: upstream manifests the plan's refresh already fetched (verified by digest)
        self.manifests = dict(manifests or {})
        self.parallel_repos = max(1, parallel_repos)
        #: repositories whose sync content is all in the store already (fetched in one batch)
        self.prefetched: set[str] = set()
        #: repository -> why its batch failed, when fetching again tag by tag cannot help
        #: (a batch of one tag, or a rate limit): its sync actions fail with that at once
        self.prefetch_failed: dict[str, ReconcilerError] = {}
        #: publication actions whose repository has been applied (a handover waits for all)
        self.reached: set[str] = set()
        #: a one-off command's repository to create or update with its version (``_content``)
        self.deferred: dict[str, list[CreateRepository | UpdateRepository]] = {}

    # -- bookkeeping -------------------------------------------------------------------
    def _blocked(self, a: Action) -> bool:
        why = self._why_not(a)
        if why is not None:
            self.bad.add(a.id)
            self.result.results.append(ActionResult(a.id, SKIPPED, why))
        return why is not None

    def _why_not(self, a: Action | None) -> str | None:
        """Why ``a`` may not run now (the apply stopped, a dependency failed), or None."""
        if a is None:
            return None
        if self.stop.is_set():
            return NOT_STARTED
        return "a dependency failed" if any(d in self.bad for d in a.depends_on) else None

    def _failed(self, a: Action, exc: ReconcilerError) -> None:
        # a one-off command reports its failures itself (``sync``: one line per tag)
        log.log(logging.INFO if self.one_off else logging.ERROR, "%s failed: %s", a.id, exc.message)
        self.bad.add(a.id)
        self.result.results.append(ActionResult(a.id, FAILED, exc.message))
        self.result.errors[a.id] = exc

    def _done(self, a: Action) -> None:
        self.result.results.append(ActionResult(a.id, DONE))

    def _deferred(self, repo: str) -> None:
        for a in self.deferred.pop(repo):
            if isinstance(a, UpdateRepository):
                self.store.repository_update(repo, feed=a.feed, upstream_name=a.upstream_name)
            elif self.store.repository_find(repo) is None:  # a v1 import may have made it already
                self.store.repository_create(repo, feed=a.feed, upstream_name=a.upstream_name)
            self._done(a)

    # -- the run ------------------------------------------------------------------------
    def run(self) -> ApplyResult:
        """Apply the plan; the result says what was done. A requested stop ends it before
        the next download or write, and it is journaled as ``interrupted``."""
        left_out = check_complete(self.plan, skip_unavailable=self.skip_unavailable)
        if self.one_off is not None:
            try:
                return self._actions(left_out)
            finally:
                self.observer.close()
        store = self.raw_store
        for entry in store.journal_list(limit=20):
            if entry.result == "running":  # we hold the lock: whoever wrote it is gone
                store.journal_finish(entry.id, result="interrupted",
                                     details={**entry.details, "summary": "the process ended before it finished"})
        started = {"desired": self.plan.desired_path, "actions": len(self.plan.actions), **self.provenance,
                   # what `reconciler drift` compares repos.yaml with later
                   "desired_repos": spec_fingerprints(self.desired, [r.id for r in self.plan.repositories])}
        self.result.journal_id = store.journal_start(command=self.command, plan_digest=self.result.plan_digest,
                                                     details=started)
        abandoned = False
        try:
            self._actions(left_out)
        except BaseException as exc:
            # a signal that abandons the apply (watch's second SIGTERM, Ctrl-C), not a bug
            abandoned = not isinstance(exc, Exception)
            raise
        finally:
            outcome = "interrupted" if abandoned else self.result.outcome
            store.journal_finish(self.result.journal_id, result=outcome, details={**started, **self.result.journal()})
            self.observer.close()
        return self.result

    def _actions(self, left_out: set[str]) -> ApplyResult:
        """Every action of the plan, repository by repository (the run without its journal entry)."""
        for failed in self.plan.failed_tags:  # failed when planned: the rest is applied, this is reported
            self.bad.add(failed.action_id)
            self.result.results.append(ActionResult(failed.action_id, FAILED, failed.error))
        self.result.planned_failures = len(self.plan.failed_tags)
        try:
            for a in self.plan.actions:
                if a.repo in left_out:
                    self.bad.add(a.id)
                    self.result.results.append(ActionResult(a.id, SKIPPED, "its upstream (or a source's) could not "
                                                            "be refreshed (--skip-unavailable)"))
            self._prefetch()
            for repo in [r.id for r in self.plan.repositories]:
                actions = [a for a in self.plan.actions_for(repo) if a.repo not in left_out]
                if actions:
                    self.stop.check()
                    self._repository(repo, actions)
                    self.observer.event("apply", f"repo:{repo}")
        except Interrupted as exc:
            self.result.stopped, self.result.exit_code = exc.message, exc.exit_code
            seen = {r.id for r in self.result.results}
            self.result.results += [ActionResult(a.id, SKIPPED, NOT_STARTED) for a in self.plan.actions
                                    if a.id not in seen]
        finally:
            if self.stop.is_set() and self.result.stopped is None:
                self.result.stopped = self.stop.reason
        return self.result

    def _tags(self, repo: str) -> dict[Digest, str]:
        """A tag for each digest ``repo``'s sync actions fetch (the first by name when
        several point there), so errors can say which."""
        tags: dict[Digest, str] = {}
        for a in sorted(self.plan.actions_for(repo), key=lambda a: a.tag or ""):
            if isinstance(a, SyncTag):
                tags.setdefault(a.digest, a.tag)
            elif isinstance(a, SyncReferrers):
                for d in _fetched(a):
                    tags.setdefault(d, f"{a.tag} (a referrer of it)")
        return tags

    # -- content, fetched before any repository changes ----------------------------------
    def _prefetch(self) -> None:
        """Fetch every repository's sync content, one batch per repository, several
        repositories at once. A failed batch is only logged: the repository's sync
        actions then fetch tag by tag and fail (or succeed) one by one."""
        work: list[tuple[str, list[Digest]]] = []
        for repo in [r.id for r in self.plan.repositories]:
            digests = [d for a in self.plan.actions_for(repo) for d in _fetched(a)]
            spec = self.desired.repositories.get(repo)
            if digests and spec is not None and spec.feed is not None and spec.upstream_name and self.sources:
                work.append((repo, sorted(set(digests), key=str)))
        if not work:
            return
        inflight = InFlight()

        def fetch(item: tuple[str, list[Digest]]) -> tuple[str, bool]:
            repo, digests = item
            spec = self.desired.repositories[repo]
            assert spec.feed is not None and self.sources is not None
            report = self.progress
            progress: Progress | None = (lambda e: report(repo, e)) if report is not None else None
            try:
                source = self.sources(spec.feed)
                try:
                    self.fetcher(self.store, source, upstream_name(spec), digests, spec.feed.max_concurrency,
                                 progress=progress, inflight=inflight, prefetched=self.manifests,
                                 tags_by_digest=self._tags(repo), batch=batch, stop=self.stop,
                                 platforms=spec.platforms)
                finally:
                    source.close()
            except ReconcilerError as exc:
                if len(digests) == 1 or isinstance(getattr(exc, "cause", exc), RateLimited):
                    self.prefetch_failed[repo] = exc
                    return repo, False
                log.warning("%s: fetching %d tags at once failed (%s); trying tag by tag", repo, len(digests),
                            exc.message)
                return repo, False
            return repo, True

        # one batch for every repository: the disk is waited for once, at the end, and a
        # blob two repositories share is stored once
        with self.store.content_batch() as batch:
            pool = ThreadPoolExecutor(max_workers=min(self.parallel_repos, len(work)), thread_name_prefix="apply-fetch")
            try:
                futures = [pool.submit(fetch, item) for item in work]
                # a requested stop returns at once: downloads in flight are abandoned (what they
                # wrote is in this batch, never committed), not waited for to their end
                wait_all(futures, self.stop)  # type: ignore[arg-type]
                done = [repo for repo, ok in (f.result() for f in futures) if ok]
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
            pool.shutdown(wait=True)
            self.stop.check()
            try:
                batch.commit()
            except ReconcilerError as exc:
                log.warning("storing the fetched content failed (%s); trying tag by tag", exc.message)
                return
        self.prefetched.update(done)

    def _repository(self, repo: str, actions: list[Action]) -> None:
        store = self.store
        late: list[PublicationAction] = []
        v1: list[V1Action] = []
        steps: list[ContentAction] = []
        drop_action: DropVersions | None = None
        for a in actions:
            if isinstance(a, (Publish, Unpublish)):
                late.append(a)  # checked when their turn comes (a handover waits for others)
                continue
            if self._blocked(a):
                continue
            try:
                match a:
                    case CreateRepository() | UpdateRepository() if self.one_off is not None:
                        self.deferred.setdefault(repo, []).append(a)  # with its version (``_content``)
                        continue
                    case CreateRepository():
                        if store.repository_find(repo) is None:  # a killed earlier run may have made it
                            store.repository_create(repo, feed=a.feed, upstream_name=a.upstream_name)
                    case UpdateRepository():
                        store.repository_update(repo, feed=a.feed, upstream_name=a.upstream_name)
                    case DeleteRepository():
                        store.repository_delete(repo)
                    case V1Upload() | V1Sync():
                        v1.append(a)
                        continue
                    case DropVersions():
                        drop_action = a  # one per repository
                        continue
                    case _:
                        steps.append(a)
                        continue
                self._done(a)
            except ReconcilerError as exc:
                self._failed(a, exc)
        dropped = self._content(repo, steps, retain_action=None if v1 else drop_action) if steps else []
        for a in v1:  # each makes its own version, after the OCI one (store.v1_commit)
            if self._blocked(a):
                continue
            try:
                self._v1(repo, a)
                self._done(a)
            except ReconcilerError as exc:
                self._failed(a, exc)
        if repo in self.deferred:  # no version made: a one-off command that failed changes nothing
            if any(s.id in self.bad for s in [*steps, *v1]) or any(f.repo == repo for f in self.plan.failed_tags):
                self.result.results += [ActionResult(a.id, SKIPPED, "its content failed") for a in self.deferred.pop(repo)]
            else:
                self._deferred(repo)
        self.observer.event("apply", f"commit:{repo}")
        for a in late:
            if publications.grouped(a):
                self._switch_when_ready(a)
                continue
            if self._blocked(a):
                continue
            try:
                before = store.repository_get(repo)
                if isinstance(a, Publish):
                    r = publish_op(store, repo, name=a.publish_name, protected=a.protected)
                    self.result.published[repo] = r.published_version or 0
                else:
                    r = unpublish_op(store, repo)
                self.result.publications += publications.switched([before], [r])
                self._done(a)
            except ReconcilerError as exc:
                self._failed(a, exc)
        if drop_action is not None:
            self._retain(repo, drop_action, dropped)

    def _retain(self, repo: str, a: DropVersions, dropped: list[int]) -> None:
        status, error = retain.finish(self.store, repo, a, dropped, why_not=self._why_not(a))
        if status != DONE:
            log.error("%s %s: %s", a.id, status, error)
            self.bad.add(a.id)
        self.result.results.append(ActionResult(a.id, status, error))

    def _switch_when_ready(self, a: PublicationAction) -> None:
        """A publication that moves a name: switched with the rest of its group, in one
        transaction, once every member's repository has been applied."""
        group = publications.group_of(self.plan, a)
        self.reached.add(a.id)
        if not all(m.id in self.reached for m in group):
            return  # the last member's repository switches them all
        if any(d in self.bad for m in group for d in m.depends_on):
            for m in group:
                self.bad.add(m.id)
                self.result.results.append(ActionResult(m.id, SKIPPED, "a dependency of its name handover failed; "
                                                        "the old publications keep serving"))
            return
        try:
            changes, switched = publications.switch_group(self.store, group)
        except ReconcilerError as exc:
            for m in group:
                self._failed(m, exc)
            return
        self.result.publications += switched
        for m in group:
            if isinstance(m, Publish):
                self.result.published[m.repo] = next(c.version or 0 for c in changes if c.repo_id == m.repo)
            self._done(m)

    def _v1(self, repo: str, a: V1Action) -> None:
        if isinstance(a, V1Upload):
            # the file is the one reviewed (check_fresh compared its sha256), so it sets a.v1_tags
            result = self.v1_uploader(self.store, repo, Path(a.file), mask_id=a.mask_id)
        else:
            spec = self.desired.repositories.get(repo)
            if spec is None or spec.feed is None or not a.upstream_name:
                raise ReconcilerError(f"{repo}: v1 sync needs a feed and upstream_name in repos.yaml")
            if self.v1_sources is None:
                raise ReconcilerError(f"{repo}: no v1 client to sync from")
            source = self.v1_sources(spec.feed)
            try:
                result = v1_sync(self.store, source, repo, a.upstream_name, tags=a.v1_tags)
            finally:
                source.close()
        if result.version is not None:
            self.result.versions[repo] = result.version.number

    def _content(self, repo: str, actions: list[ContentAction], *,
                 retain_action: DropVersions | None = None) -> list[int]:
        """Run the content actions, commit one new version; return the versions of ``retain_action`` dropped with it."""
        store = self.store
        create = any(isinstance(a, CreateRepository) for a in self.deferred.get(repo, ()))
        try:
            base = RepositoryVersion(repo, 0, ContentSet(), {}) if create else store.version_get(repo)
            state = RepoState.of(base)
            # the graph of every root the actions name that is stored already (copies,
            # prefetched syncs), in one walk; content fetched or uploaded below is added then
            graph = with_closure(store, load_graph(store, state.content), content_roots(actions))
        except ReconcilerError as exc:
            for a in actions:
                if not self._blocked(a):
                    self._failed(a, exc)
            return []
        done: list[ContentAction] = []
        spec = self.desired.repositories.get(repo)
        source: UpstreamSource | None = None
        try:
            for a in actions:
                self.stop.check()
                if self._blocked(a):
                    continue
                try:
                    if isinstance(a, (SyncTag, SyncReferrers)) and repo in self.prefetch_failed:
                        raise self.prefetch_failed[repo]
                    if isinstance(a, (SyncTag, SyncReferrers)) and repo not in self.prefetched:
                        assert spec is not None and spec.feed is not None and spec.upstream_name
                        if source is None:
                            if self.sources is None:
                                raise ReconcilerError(f"{repo}: no upstream client to sync from")
                            source = self.sources(spec.feed)
                        # exactly the reviewed digest, even if the upstream tag moved since
                        self.fetcher(store, source, upstream_name(spec), _fetched(a), spec.feed.max_concurrency,
                                     tags_by_digest={d: a.tag for d in _fetched(a)}, stop=self.stop,
                                     platforms=spec.platforms)
                    if isinstance(a, Upload):
                        state, graph = upload_step(self.uploader, store, a, state, graph)
                    else:
                        graph = with_closure(store, graph, content_roots([a]))
                        state = run_step(a, state, graph).state
                    done.append(a)
                except ReconcilerError as exc:
                    self._failed(a, exc)
        finally:
            if source is not None:
                source.close()
        self.stop.check()  # nothing of this repository is visible yet: stopping here loses nothing
        try:
            if repo in self.deferred:  # a one-off command's repository changes go with its version
                if not done:
                    return []
                self._deferred(repo)
                base = store.version_get(repo) if create else base
            drop = retain.with_commit(store, repo, retain_action, why_not=self._why_not(retain_action),
                                      changes=state != RepoState.of(base))
            info = store.version_commit(repo, base=base.number, content=state.content, tags=state.tags,
                                        operation=self.one_off or f"apply {self.result.plan_digest[:19]}",
                                        provenance=None if self.one_off else self.provenance, drop=drop,
                                        absent=state.absent)
        except ReconcilerError as exc:
            for a in done:
                self._failed(a, exc)
            return []
        for a in done:
            self._done(a)
        if info is not None:
            self.result.versions[repo] = info.number
        return drop
