"""Apply: execute a ``Plan`` against the store, exactly as reviewed.

- Under the store's exclusive lock; a saved plan whose store generation, desired-file
  digest or upload files changed is refused (``StalePlan``) naming what changed.
- Repositories in the plan's order (sources before targets). For each: repository
  actions, then every content action transforms one ``RepoState`` (the same
  ``plan.steps`` the diff used; content is fetched or uploaded into the store first, where
  it stays invisible until referenced), then ONE ``version_commit``, then the
  publication switch. So a client sees the old version or the new one, never a mix.
- A failed action marks everything that depends on it skipped; independent actions
  still run (``--keep-going`` semantics). The result lists each action's outcome.
- Every apply is journaled (``journal_start``/``journal_finish``); entries left
  ``running`` by a killed apply are closed as ``interrupted`` by the next one.
- Re-running after a crash converges: content is global and idempotent to store,
  versions commit atomically, and the next plan starts from whatever was committed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.apply.hooks import CountingStore, KillSwitch
from reconciler.desired.model import DesiredState
from reconciler.errors import ReconcilerError, StalePlan
from reconciler.model import Digest, Index
from reconciler.ops.cascade import RefGraph
from reconciler.ops.graph import load_graph
from reconciler.ops.publish import publish as publish_op
from reconciler.ops.publish import unpublish as unpublish_op
from reconciler.ops.state import RepoState
from reconciler.plan.model import Action, Op, Plan
from reconciler.plan.refresh import upstream_name
from reconciler.plan.steps import ORIGIN, run_step, set_tag
from reconciler.registry.protocol import UpstreamSource
from reconciler.store.protocol import Store

log = logging.getLogger(__name__)

#: fetch the closure of ``digests`` from an upstream into the store (ops.fetch.fetch_content)
Fetcher = Callable[[Store, UpstreamSource, str, list[Digest], int], None]
#: (store, path, existing content, tag) -> (content, tags)  (ops.upload.upload_content)
Uploader = Callable[[Store, Path, object, str | None], tuple[object, Mapping[str, Digest]]]
SourceFactory = Callable[..., UpstreamSource]

DONE, FAILED, SKIPPED = "done", "failed", "skipped"


def default_fetcher(store: Store, source: UpstreamSource, name: str, digests: list[Digest], jobs: int) -> None:
    from reconciler.ops.fetch import fetch_content

    fetch_content(store, source, name, digests, jobs=jobs)


def default_uploader(store: Store, path: Path, existing: object, tag: str | None) -> tuple[object, Mapping[str, Digest]]:
    from reconciler.ops.upload import upload_content

    result = upload_content(store, path, existing=existing, tag=tag)  # type: ignore[arg-type]
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

    def status(self, status: str) -> list[ActionResult]:
        return [r for r in self.results if r.status == status]

    @property
    def ok(self) -> bool:
        return not self.status(FAILED) and not self.status(SKIPPED)

    def to_json(self) -> dict[str, object]:
        return {"ok": self.ok, "plan_digest": self.plan_digest, "journal_id": self.journal_id,
                "versions": self.versions, "published": self.published,
                "actions": [r.to_json() for r in self.results]}


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
    for a in plan.actions:
        if a.op is Op.UPLOAD and a.file and a.file_digest and file_digest(Path(a.file)) != a.file_digest:
            problems.append(f"upload file {a.file} changed since the plan was made")
    if problems:
        raise StalePlan("refusing a stale plan: " + "; ".join(problems),
                        hint="make a new plan (`reconciler plan -f FILE --out PLAN`), review it, apply that")


def closure_graph(store: Store, roots: Iterable[Digest]) -> RefGraph:
    """The graph of ``roots`` and everything under them, read from the store."""
    seen: dict[Digest, object] = {}
    stack = [d for d in roots if store.manifest_has(d)]
    manifests = []
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        m = store.manifest_get(d)
        seen[d] = m
        manifests.append(m)
        if isinstance(m, Index):
            stack += [c for c in m.children() if store.manifest_has(c)]
    return RefGraph.from_manifests(manifests)


class Runner:
    def __init__(self, plan: Plan, store: Store, desired: DesiredState, *, sources: SourceFactory | None = None,
                 fetcher: Fetcher = default_fetcher, uploader: Uploader = default_uploader,
                 command: str = "apply", kill: KillSwitch | None = None) -> None:
        self.plan, self.desired = plan, desired
        self.kill = kill if kill is not None else KillSwitch()
        self.store: Store = CountingStore(store, self.kill) if self.kill else store
        self.raw_store = store
        self.sources, self.fetcher, self.uploader = sources, fetcher, uploader
        self.command = command
        self.result = ApplyResult(plan.digest())
        self.bad: set[str] = set()  # failed or skipped action ids

    # -- bookkeeping -------------------------------------------------------------------
    def _blocked(self, a: Action) -> bool:
        if any(d in self.bad for d in a.depends_on):
            self.bad.add(a.id)
            self.result.results.append(ActionResult(a.id, SKIPPED, "a dependency failed"))
            return True
        return False

    def _failed(self, a: Action, exc: ReconcilerError) -> None:
        log.error("%s failed: %s", a.id, exc.message)
        self.bad.add(a.id)
        self.result.results.append(ActionResult(a.id, FAILED, exc.message))

    def _done(self, a: Action) -> None:
        self.result.results.append(ActionResult(a.id, DONE))

    # -- the run ------------------------------------------------------------------------
    def run(self) -> ApplyResult:
        store = self.raw_store
        for entry in store.journal_list(limit=20):
            if entry.result == "running":  # we hold the lock: whoever wrote it is gone
                store.journal_finish(entry.id, result="interrupted", details=dict(entry.details))
        self.result.journal_id = store.journal_start(
            command=self.command, plan_digest=self.result.plan_digest,
            details={"desired": self.plan.desired_path, "actions": len(self.plan.actions)})
        try:
            for repo in [r.id for r in self.plan.repositories]:
                actions = self.plan.actions_for(repo)
                if actions:
                    self._repository(repo, actions)
                    self.kill.at(f"repo:{repo}")
        finally:
            outcome = "ok" if self.result.ok else ("failed" if not self.result.status(DONE) else "partial")
            store.journal_finish(self.result.journal_id, result=outcome, details=self.result.to_json())
        return self.result

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
        steps = [a for a in content_actions if a not in late]
        if steps:
            self._content(repo, steps)
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

    def _content(self, repo: str, actions: list[Action]) -> None:
        store = self.store
        try:
            base = store.version_get(repo)
            state = RepoState.of(base)
            graph = load_graph(store, state.content)
        except ReconcilerError as exc:
            for a in actions:
                if not self._blocked(a):
                    self._failed(a, exc)
            return
        done: list[Action] = []
        spec = self.desired.repositories.get(repo)
        source: UpstreamSource | None = None
        try:
            for a in actions:
                if self._blocked(a):
                    continue
                try:
                    if a.op is Op.SYNC_TAG:
                        assert spec is not None and spec.feed is not None and spec.upstream_name and a.digest
                        if source is None:
                            if self.sources is None:
                                raise ReconcilerError(f"{repo}: no upstream client to sync from")
                            source = self.sources(spec.feed)
                        # exactly the reviewed digest, even if the upstream tag moved since
                        self.fetcher(store, source, upstream_name(spec), [a.digest], spec.feed.max_concurrency)
                    if a.op is Op.UPLOAD:
                        assert a.file is not None
                        content, tags = self.uploader(store, Path(a.file), state.content, a.tag)
                        target = tags.get(a.tag) if a.tag else None
                        if a.digest is not None and target is not None and target != a.digest:
                            raise StalePlan(f"upload {a.file} now gives {target}, the plan said {a.digest}")
                        state = state.with_content(content)  # type: ignore[arg-type]
                        if a.tag and target is not None:
                            graph = graph.merged(closure_graph(store, [target]))
                            state = set_tag(state, graph, a.tag, target, ORIGIN[Op.UPLOAD]).state
                    else:
                        roots = list(a.digests) + ([a.digest] if a.digest else [])
                        if roots:
                            graph = graph.merged(closure_graph(store, roots))
                        state = run_step(a, state, graph).state
                    done.append(a)
                except ReconcilerError as exc:
                    self._failed(a, exc)
        finally:
            if source is not None:
                source.close()
        try:
            info = store.version_commit(repo, base=base.number, content=state.content, tags=state.tags,
                                        operation=f"apply {self.result.plan_digest[:19]}")
        except ReconcilerError as exc:
            for a in done:
                self._failed(a, exc)
            return
        for a in done:
            self._done(a)
        if info is not None:
            self.result.versions[repo] = info.number
