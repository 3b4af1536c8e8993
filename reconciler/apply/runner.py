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
- A failed action marks everything that depends on it skipped; independent actions
  still run (``--keep-going`` semantics). The result lists each action's outcome. A tag
  the plan could not resolve (``Plan.failed_tags``) is reported as a failed action too:
  the rest is applied, the journal says ``partial`` and the exit code is 1.
- Every apply is journaled (``journal_start``/``journal_finish``); entries left
  ``running`` by a killed apply are closed as ``interrupted`` by the next one.
- An apply that must stop (``stop.StopFlag``: the apply lock was lost) starts no new
  download or write: what is left is skipped, the summary says why, and the journal
  entry is closed as ``interrupted``.
- Re-running after a crash converges: content is global and idempotent to store,
  versions commit atomically, and the next plan starts from whatever was committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from reconciler.apply import retain
from reconciler.apply.hooks import CountingStore, KillSwitch
from reconciler.apply.stop import StopFlag, StoppingStore
from reconciler.desired.model import DesiredState
from reconciler.errors import PlanIncomplete, ReconcilerError, StalePlan
from reconciler.model import Digest, Index, Manifest
from reconciler.ops.cascade import RefGraph
from reconciler.ops.fetch import InFlight
from reconciler.ops.graph import load_graph
from reconciler.ops.parallel import Progress, ProgressEvent
from reconciler.ops.publish import publish as publish_op
from reconciler.ops.publish import unpublish as unpublish_op
from reconciler.ops.state import RepoState
from reconciler.ops.v1sync import v1_sync
from reconciler.ops.v1upload import upload_v1
from reconciler.plan.drift import spec_fingerprints
from reconciler.plan.model import Action, Op, Plan
from reconciler.plan.refresh import SourceFactory, upstream_name
from reconciler.plan.steps import ORIGIN, run_step, set_tag
from reconciler.plan.v1refresh import V1SourceFactory
from reconciler.registry.protocol import UpstreamSource
from reconciler.store.protocol import ContentBatch, ContentSet, Kind, ManifestRefs, Store

log = logging.getLogger(__name__)

class Fetcher(Protocol):
    """Fetch the closure of ``digests`` from an upstream into the store
    (``ops.fetch.fetch_content``)."""

    def __call__(self, store: Store, source: UpstreamSource, name: str, digests: list[Digest], jobs: int, *,
                 progress: Progress | None = None, inflight: InFlight | None = None,
                 prefetched: Mapping[Digest, Manifest | Index] | None = None,
                 tags_by_digest: Mapping[Digest, str] | None = None,
                 batch: ContentBatch | None = None) -> None: ...


#: (repository id, event) for every progress event of that repository's fetch
RepoProgress = Callable[[str, ProgressEvent], None]

#: at most this many repositories fetch their content at once (each with its feed's jobs)
MAX_PARALLEL_REPOS = 4
#: (store, path, existing content, tag) -> (content, tags)  (ops.upload.upload_content)
Uploader = Callable[[Store, Path, ContentSet, str | None], tuple[ContentSet, Mapping[str, Digest]]]

DONE, FAILED, SKIPPED = "done", "failed", "skipped"
#: the error of an action skipped because the apply stopped first
NOT_STARTED = "not started: the apply stopped"
V1_OPS = (Op.V1_UPLOAD, Op.V1_SYNC)


def default_fetcher(store: Store, source: UpstreamSource, name: str, digests: list[Digest], jobs: int, *,
                    progress: Progress | None = None, inflight: InFlight | None = None,
                    prefetched: Mapping[Digest, Manifest | Index] | None = None,
                    tags_by_digest: Mapping[Digest, str] | None = None,
                    batch: ContentBatch | None = None) -> None:
    from reconciler.ops.fetch import fetch_content

    fetch_content(store, source, name, digests, jobs=jobs, progress=progress, inflight=inflight,
                  prefetched=prefetched, tags_by_digest=tags_by_digest, batch=batch)


def default_uploader(store: Store, path: Path, existing: ContentSet,
                     tag: str | None) -> tuple[ContentSet, Mapping[str, Digest]]:
    from reconciler.ops.upload import upload_content

    result = upload_content(store, path, existing=existing, tag=tag)
    return result.content, result.tags


@dataclass
class ActionResult:
    id: str
    status: str
    error: str | None = None

    def to_json(self) -> dict[str, object]:
        return {k: v for k, v in (("id", self.id), ("status", self.status), ("error", self.error)) if v is not None}


@dataclass
class ApplyResult:
    plan_digest: str
    results: list[ActionResult] = field(default_factory=list)
    versions: dict[str, int] = field(default_factory=dict)
    published: dict[str, int] = field(default_factory=dict)
    journal_id: int | None = None
    #: why the apply stopped before its end (the apply lock was lost), if it did
    stopped: str | None = None

    def status(self, status: str) -> list[ActionResult]:
        return [r for r in self.results if r.status == status]

    @property
    def ok(self) -> bool:
        return not self.status(FAILED) and not self.status(SKIPPED) and self.stopped is None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"ok": self.ok, "plan_digest": self.plan_digest, "journal_id": self.journal_id,
                                  "versions": self.versions, "published": self.published,
                                  "actions": [r.to_json() for r in self.results]}
        if self.stopped is not None:
            out["stopped"] = self.stopped
        return out


def check_complete(plan: Plan) -> None:
    """Refuse a plan that could not plan some repository (its upstream refresh failed):
    applying the rest would look like success while that repository silently lagged."""
    if plan.errors:
        raise PlanIncomplete("refusing a plan with errors: " + "; ".join(plan.errors),
                             hint="fix the upstream (or use --target for the other repositories), "
                                  "then plan again")


def check_fresh(plan: Plan, store: Store, desired: DesiredState, file_digest: Callable[[Path], str]) -> None:
    """Refuse a plan made against another store generation, desired file or upload file."""
    problems = []
    generation = store.generation()
    if generation != plan.store_generation:
        problems.append(f"the store changed since the plan was made (generation {plan.store_generation} -> "
                        f"{generation}: another apply or a write happened)")
    if desired.digest != plan.desired_digest:
        problems.append(f"{plan.desired_path} changed since the plan was made "
                        f"({plan.desired_digest[:19]} -> {desired.digest[:19]})")
    files = {a.file: a.file_digest for a in plan.actions
             if a.op in (Op.UPLOAD, Op.V1_UPLOAD) and a.file and a.file_digest}
    for file, planned in files.items():  # each file hashed once, however many repositories upload it
        if file_digest(Path(file)) != planned:
            problems.append(f"upload file {file} changed since the plan was made")
    if problems:
        raise StalePlan("refusing a stale plan: " + "; ".join(problems),
                        hint="make a new plan (`reconciler plan -f FILE --out PLAN`), review it, apply that")


def closure_graph(store: Store, roots: Iterable[Digest]) -> RefGraph:
    """The graph of ``roots`` and everything under them, from the store's recorded
    references (``Store.manifest_refs``, as ``ops.graph.load_graph``): one query per
    index level, no manifest file read or parsed."""
    refs: dict[Digest, ManifestRefs] = {}
    level = set(roots)
    while level:
        found = store.manifest_refs(level)
        refs.update(found)
        level = {c for r in found.values() if r.kind is Kind.INDEX for c in r.children} - refs.keys()
    return RefGraph.from_refs(refs)


def _roots(actions: Iterable[Action]) -> list[Digest]:
    """The manifests and indexes the actions point tags at or copy."""
    return [d for a in actions for d in (*a.digests, *([a.digest] if a.digest else []))]


def _with_closure(store: Store, graph: RefGraph, roots: list[Digest]) -> RefGraph:
    """``graph`` plus the closure of the ``roots`` it lacks. A node already in it brings
    its closure along (the graph is built from complete versions and closures), so the
    common case (an apply of many tags whose content the graph holds) reads nothing and
    copies no graph."""
    missing = [d for d in roots if d not in graph]
    return graph.merged(closure_graph(store, missing)) if missing else graph


class Runner:
    def __init__(self, plan: Plan, store: Store, desired: DesiredState, *, sources: SourceFactory | None = None,
                 fetcher: Fetcher = default_fetcher, uploader: Uploader = default_uploader,
                 command: str = "apply", kill: KillSwitch | None = None, progress: RepoProgress | None = None,
                 parallel_repos: int = MAX_PARALLEL_REPOS,
                 manifests: Mapping[Digest, Manifest | Index] | None = None,
                 v1_sources: V1SourceFactory | None = None, stop: StopFlag | None = None,
                 provenance: Mapping[str, str] | None = None) -> None:
        self.plan, self.desired = plan, desired
        #: recorded with every version this apply makes, and in its journal entry
        #: (``git_commit`` from ``reconciler watch``; the desired file's digest always)
        self.provenance = {"desired_digest": plan.desired_digest, **(provenance or {})}
        self.kill = kill if kill is not None else KillSwitch()
        self.stop = stop if stop is not None else StopFlag()
        inner: Store = CountingStore(store, self.kill) if self.kill else store
        self.store: Store = StoppingStore(inner, self.stop, store)  # type: ignore[assignment]
        self.raw_store = store
        self.sources, self.fetcher, self.uploader = sources, fetcher, uploader
        self.v1_sources = v1_sources
        self.command = command
        self.result = ApplyResult(plan.digest())
        self.bad: set[str] = set()  # failed or skipped action ids
        self.progress = progress
        #: upstream manifests the plan's refresh already fetched (verified by digest)
        self.manifests = dict(manifests or {})
        self.parallel_repos = max(1, parallel_repos)
        #: repositories whose sync content is all in the store already (fetched in one batch)
        self.prefetched: set[str] = set()

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
        log.error("%s failed: %s", a.id, exc.message)
        self.bad.add(a.id)
        self.result.results.append(ActionResult(a.id, FAILED, exc.message))

    def _done(self, a: Action) -> None:
        self.result.results.append(ActionResult(a.id, DONE))

    # -- the run ------------------------------------------------------------------------
    def run(self) -> ApplyResult:
        check_complete(self.plan)
        store = self.raw_store
        for entry in store.journal_list(limit=20):
            if entry.result == "running":  # we hold the lock: whoever wrote it is gone
                store.journal_finish(entry.id, result="interrupted", details=dict(entry.details))
        started = {"desired": self.plan.desired_path, "actions": len(self.plan.actions), **self.provenance,
                   # what `reconciler drift` compares repos.yaml with later
                   "desired_repos": spec_fingerprints(self.desired, [r.id for r in self.plan.repositories])}
        self.result.journal_id = store.journal_start(command=self.command, plan_digest=self.result.plan_digest,
                                                     details=started)
        interrupted = False
        for failed in self.plan.failed_tags:  # failed when planned: the rest is applied, this is reported
            self.bad.add(failed.action_id)
            self.result.results.append(ActionResult(failed.action_id, FAILED, failed.error))
        try:
            self._prefetch()
            for repo in [r.id for r in self.plan.repositories]:
                actions = self.plan.actions_for(repo)
                if actions:
                    self._repository(repo, actions)
                    self.kill.at(f"repo:{repo}")
        except BaseException as exc:
            # a signal that abandons the apply (watch's second SIGTERM, Ctrl-C), not a bug
            interrupted = not isinstance(exc, Exception)
            raise
        finally:
            if self.stop.reason is not None:
                self.result.stopped = self.stop.reason.message
            outcome = "ok" if self.result.ok else "partial"
            if not self.result.status(DONE) and len(self.result.results) > len(self.plan.failed_tags):
                outcome = "failed"  # something was to be done, and none of it was
            if self.stop.is_set() or interrupted:
                outcome = "interrupted"
            store.journal_finish(self.result.journal_id, result=outcome, details={**started, **self.result.to_json()})
            self.kill.close()
        return self.result

    def _tags(self, repo: str) -> dict[Digest, str]:
        """A tag for each digest ``repo``'s sync actions fetch (the first by name when
        several point there), so errors can say which."""
        tags: dict[Digest, str] = {}
        for a in sorted(self.plan.actions_for(repo), key=lambda a: a.tag or ""):
            if a.op is Op.SYNC_TAG and a.digest and a.tag:
                tags.setdefault(a.digest, a.tag)
        return tags

    # -- content, fetched before any repository changes ----------------------------------
    def _prefetch(self) -> None:
        """Fetch every repository's sync content, one batch per repository, several
        repositories at once. A failed batch is only logged: the repository's sync
        actions then fetch tag by tag and fail (or succeed) one by one."""
        work: list[tuple[str, list[Digest]]] = []
        for repo in [r.id for r in self.plan.repositories]:
            digests = [a.digest for a in self.plan.actions_for(repo) if a.op is Op.SYNC_TAG and a.digest]
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
                                 tags_by_digest=self._tags(repo), batch=batch)
                finally:
                    source.close()
            except ReconcilerError as exc:
                log.warning("%s: fetching %d tags at once failed (%s); trying tag by tag", repo, len(digests),
                            exc.message)
                return repo, False
            return repo, True

        # one batch for every repository: the disk is waited for once, at the end, and a
        # blob two repositories share is stored once
        with self.store.content_batch() as batch:
            done: list[str] = []
            with ThreadPoolExecutor(max_workers=min(self.parallel_repos, len(work)),
                                    thread_name_prefix="apply-fetch") as pool:
                done = [repo for repo, ok in pool.map(fetch, work) if ok]
            try:
                batch.commit()
            except ReconcilerError as exc:
                log.warning("storing the fetched content failed (%s); trying tag by tag", exc.message)
                return
        self.prefetched.update(done)

    def _repository(self, repo: str, actions: list[Action]) -> None:
        store = self.store
        content_actions = []
        for a in actions:
            if self._blocked(a):
                continue
            try:
                if a.op is Op.CREATE_REPOSITORY:
                    if store.repository_find(repo) is None:  # a killed earlier run may have made it
                        store.repository_create(repo, feed=a.feed, upstream_name=a.upstream_name)
                elif a.op is Op.UPDATE_REPOSITORY:
                    store.repository_update(repo, feed=a.feed, upstream_name=a.upstream_name)
                elif a.op is Op.DELETE_REPOSITORY:
                    store.repository_delete(repo)
                else:
                    content_actions.append(a)
                    continue
                self._done(a)
            except ReconcilerError as exc:
                self._failed(a, exc)
        late = [a for a in content_actions if a.op in (Op.PUBLISH, Op.UNPUBLISH)]
        v1 = [a for a in content_actions if a.op in V1_OPS]
        drop_action = next((a for a in content_actions if a.op is Op.DROP_VERSIONS), None)
        steps = [a for a in content_actions if a not in late and a not in v1 and a is not drop_action]
        dropped = self._content(repo, steps, retain_action=None if v1 else drop_action) if steps else []
        for a in v1:  # each makes its own version, after the OCI one (store.v1_commit)
            if self._blocked(a):
                continue
            try:
                self._v1(repo, a)
                self._done(a)
            except ReconcilerError as exc:
                self._failed(a, exc)
        self.kill.at(f"commit:{repo}")
        for a in late:
            if self._blocked(a):
                continue
            try:
                if a.op is Op.PUBLISH:
                    assert a.publish_name is not None
                    r = publish_op(store, repo, name=a.publish_name, protected=bool(a.protected))
                    self.result.published[repo] = r.published_version or 0
                else:
                    unpublish_op(store, repo)
                self._done(a)
            except ReconcilerError as exc:
                self._failed(a, exc)
        if drop_action is not None:
            self._retain(repo, drop_action, dropped)

    def _retain(self, repo: str, a: Action, dropped: list[int]) -> None:
        status, error = retain.finish(self.store, repo, a, dropped, why_not=self._why_not(a))
        if status != DONE:
            log.error("%s %s: %s", a.id, status, error)
            self.bad.add(a.id)
        self.result.results.append(ActionResult(a.id, status, error))

    def _v1(self, repo: str, a: Action) -> None:
        if a.op is Op.V1_UPLOAD:
            assert a.file is not None
            # the file is the one reviewed (check_fresh compared its sha256), so it sets a.v1_tags
            result = upload_v1(self.store, repo, Path(a.file), mask_id=a.mask_id)
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

    def _upload(self, a: Action, state: RepoState, graph: RefGraph) -> tuple[RepoState, RefGraph]:
        """Import the file and set the tags the plan reviewed: every tag the file names, or
        just ``tag`` (``ops.uploadtags``); a file that now sets others makes the plan stale."""
        assert a.file is not None
        content, named = self.uploader(self.store, Path(a.file), state.content, a.tag)
        wanted = {a.tag: named[a.tag]} if a.tag else dict(named)
        got = {t: str(d) for t, d in sorted(wanted.items())}
        planned = dict(a.upload_tags) or ({a.tag: str(a.digest)} if a.tag and a.digest else got)
        if got != planned:
            raise StalePlan(f"upload {a.file} now sets {got}, the plan said {planned}",
                            hint="plan again and review what the file holds now")
        state = state.with_content(content)
        graph = _with_closure(self.store, graph, list(wanted.values()))
        for tag, digest in wanted.items():
            state = set_tag(state, graph, tag, digest, ORIGIN[Op.UPLOAD]).state
        return state, graph

    def _content(self, repo: str, actions: list[Action], *, retain_action: Action | None = None) -> list[int]:
        """Run the content actions, commit one new version; return the versions of ``retain_action`` dropped with it."""
        store = self.store
        try:
            base = store.version_get(repo)
            state = RepoState.of(base)
            # the graph of every root the actions name that is stored already (copies,
            # prefetched syncs), in one walk; content fetched or uploaded below is added then
            graph = _with_closure(store, load_graph(store, state.content), _roots(actions))
        except ReconcilerError as exc:
            for a in actions:
                if not self._blocked(a):
                    self._failed(a, exc)
            return []
        done: list[Action] = []
        spec = self.desired.repositories.get(repo)
        source: UpstreamSource | None = None
        try:
            for a in actions:
                if self._blocked(a):
                    continue
                try:
                    if a.op is Op.SYNC_TAG and repo not in self.prefetched:
                        assert spec is not None and spec.feed is not None and spec.upstream_name and a.digest
                        if source is None:
                            if self.sources is None:
                                raise ReconcilerError(f"{repo}: no upstream client to sync from")
                            source = self.sources(spec.feed)
                        # exactly the reviewed digest, even if the upstream tag moved since
                        self.fetcher(store, source, upstream_name(spec), [a.digest], spec.feed.max_concurrency,
                                     tags_by_digest={a.digest: a.tag} if a.tag else None)
                    if a.op is Op.UPLOAD:
                        state, graph = self._upload(a, state, graph)
                    else:
                        graph = _with_closure(store, graph, _roots([a]))
                        state = run_step(a, state, graph).state
                    done.append(a)
                except ReconcilerError as exc:
                    self._failed(a, exc)
        finally:
            if source is not None:
                source.close()
        try:
            drop = retain.with_commit(store, repo, retain_action, why_not=self._why_not(retain_action),
                                      changes=state != RepoState.of(base))
            info = store.version_commit(repo, base=base.number, content=state.content, tags=state.tags,
                                        operation=f"apply {self.result.plan_digest[:19]}",
                                        provenance=self.provenance, drop=drop)
        except ReconcilerError as exc:
            for a in done:
                self._failed(a, exc)
            return []
        for a in done:
            self._done(a)
        if info is not None:
            self.result.versions[repo] = info.number
        return drop
