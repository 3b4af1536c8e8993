"""``reconciler sync``: the one-off sync as a one-repository change (``desired.oneoff``),
planned and applied by ``apply.oneoff`` like the repos.yaml entry it stands for; this
module turns that run into the command's ``SyncResult`` and keeps the command's promises:

- a failure changes nothing: the repository is created, and its feed and upstream name
  recorded, only with the sync's version, or when nothing failed (``Runner.deferred``);
- a new repository whose upstream lists no tags is not created unless ``allow_empty``;
- the upstream's tag list failing, or its client failing to open, is the command's
  error (an apply would plan the other repositories; a one-off command has only this one);
- tags that cannot be synced keep their targets and are reported, the others commit.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Container, Mapping
from dataclasses import dataclass, field

from reconciler.apply.oneoff import LentSource, OneOffRun, run_one_off, tag_changes
from reconciler.apply.result import FAILED
from reconciler.desired.model import DesiredState, RepositorySpec
from reconciler.desired.oneoff import one_repository, sync_spec
from reconciler.errors import InvalidInput, ReconcilerError
from reconciler.model import Digest, Index, Manifest
from reconciler.model.content import Origin
from reconciler.model.platforms import PlatformFilter
from reconciler.model.reference import check_upstream_name
from reconciler.model.registry import RegistryConfig
from reconciler.model.repository import Repository
from reconciler.model.tagfilter import ALL_TAGS, TagFilter
from reconciler.ops.fetch import FetchResult, fetch_content, merge_fetches
from reconciler.ops.parallel import Progress, ProgressEvent
from reconciler.ops.refresh import UpstreamView, refresh_upstream
from reconciler.ops.state import RepoState
from reconciler.ops.stop import StopToken
from reconciler.ops.sync import SyncResult
from reconciler.ops.transfer.walk import InFlight
from reconciler.plan.actions import Publish, SyncTag, Unpublish
from reconciler.plan.model import Plan
from reconciler.plan.observe import upstream_name
from reconciler.plan.observed import Observed, UpstreamTags
from reconciler.registry.protocol import UpstreamSource
from reconciler.store.protocol import Store
from reconciler.store.roles.content import ContentBatch

EXAMPLE = "--feed https://registry-1.docker.io --upstream-name library/busybox"


@dataclass
class _Client:
    """The command's one upstream client, opened on first use, lent to refresh and apply;
    what it failed with, and what its fetches brought."""

    factory: Callable[[RegistryConfig], UpstreamSource]
    source: UpstreamSource | None = None
    error: ReconcilerError | None = None
    fetches: list[FetchResult] = field(default_factory=list)

    def __call__(self, config: RegistryConfig) -> UpstreamSource:
        if self.source is None:
            try:
                self.source = self.factory(config)
            except ReconcilerError as exc:
                self.error = exc
                raise
        return LentSource(self.source)

    def close(self) -> None:
        if self.source is not None:
            self.source.close()

    @property
    def requests(self) -> int:
        return self.source.stats.total if self.source is not None else 0


def sync_command(store: Store, repo_id: str, *, feed: str | None, upstream: str | None, config: RegistryConfig,
                 factory: Callable[[RegistryConfig], UpstreamSource], tag_filter: TagFilter = ALL_TAGS,
                 mirror: bool = False, allow_empty: bool = False, platforms: PlatformFilter | None = None,
                 progress: Progress | None = None,
                 lock_timeout: float = 60.0, command: str = "sync") -> SyncResult:
    """Sync ``repo_id`` (see the module docstring). ``feed``/``upstream``: as given on
    the command line (None: the repository's); ``config``: how to reach the feed, its
    ``url`` is filled in here."""
    client = _Client(factory)
    spec_of: list[RepositorySpec] = []
    found: list[Repository | None] = []

    def change(repo: Repository | None) -> DesiredState:
        url = feed or (repo.feed if repo else None)
        name = upstream or (repo.upstream_name if repo else None)
        if not url or not name:
            raise InvalidInput(f"repository {repo_id!r} has no {'feed' if not url else 'upstream name'} to sync from",
                               hint=f"give them: reconciler sync {repo_id} {EXAMPLE}")
        check_upstream_name(name, url)  # before the registry answers a bare 404 (or an empty list)
        spec = sync_spec(repo_id, dataclasses.replace(config, url=url, name=url), name,
                         tag_filter=tag_filter, mirror=mirror, allow_empty=allow_empty, platforms=platforms)
        spec_of.append(spec)
        found.append(repo)
        return one_repository(spec, command)

    def resolve(source: UpstreamSource, spec: RepositorySpec, jobs: int, known: Container[str]) -> UpstreamView:
        try:
            return refresh_upstream(source, upstream_name(spec), spec.tag_filter, jobs=jobs, progress=progress,
                                    known=known)
        except ReconcilerError as exc:
            client.error = exc
            raise

    def check(plan: Plan, observed: Observed) -> None:
        if client.error is not None:  # the one upstream could not be read: the command fails, nothing changed
            raise client.error

    def fetch(store: Store, source: UpstreamSource, name: str, digests: list[Digest], jobs: int, *,
              progress: Progress | None = None, inflight: InFlight | None = None,
              prefetched: Mapping[Digest, Manifest | Index] | None = None,
              tags_by_digest: Mapping[Digest, str] | None = None,
              batch: ContentBatch | None = None, stop: StopToken | None = None,
              platforms: PlatformFilter | None = None) -> None:
        client.fetches.append(fetch_content(store, source, name, digests, jobs=jobs, progress=progress,
                                            inflight=inflight, prefetched=prefetched, tags_by_digest=tags_by_digest,
                                            batch=batch, stop=stop, platforms=platforms))

    def report(repo: str, event: ProgressEvent) -> None:
        if progress is not None:
            progress(event)

    def finish(run: OneOffRun) -> SyncResult:
        return _result(run, spec_of[-1], found[-1], client)

    try:
        return run_one_off(store, change, repo_id, operation="sync", lock_timeout=lock_timeout, sources=client,
                           resolver=resolve, fetcher=fetch, progress=report if progress else None, check=check,
                           left_alone=(Publish, Unpublish), finish=finish)
    finally:
        client.close()


def _result(run: OneOffRun, spec: RepositorySpec, repo: Repository | None, client: _Client) -> SyncResult:
    """The command's result (a failed sync left nothing to undo: ``Runner.deferred``)."""
    repo_id = run.repo_id
    upstream = run.observed.upstreams.get(repo_id) or UpstreamTags(upstream_name(spec))
    by_id = {a.id: a for a in run.plan.actions if isinstance(a, SyncTag)}
    failed = {f.tag: f.error for f in run.plan.failed_tags if f.repo == repo_id}
    failed |= {by_id[r.id].tag: r.error or "failed" for r in run.result.results
               if r.status == FAILED and r.id in by_id}
    fetched = merge_fetches(client.fetches)
    version = run.result.versions.get(repo_id)
    warnings = list(upstream.notes)
    warnings += [f"tag {t} not synced: {why}" for t, why in sorted(upstream.refused.items())]
    synced = sorted(n for n, e in (run.before.tags.items() if run.before else ())
                    if e.origin == Origin.SYNC and spec.tag_filter.matches(n))
    held_back = (spec.mirror and not upstream.tags and not upstream.unresolved and not spec.allow_empty
                 and bool(synced))
    if held_back:
        warnings.append(f"upstream {upstream.name} selected no tags: mirror removes nothing "
                        f"({len(synced)} synced tags kept); pass --allow-empty if it really is empty")
    if not upstream.listed and not spec.allow_empty and not held_back:
        warnings.append(f"upstream {upstream.name} lists no tags: nothing to sync (a wrong upstream name looks "
                        "exactly like this on registries that answer an unknown name with an empty list)")
    kept = sorted(n for n in upstream.outranked if run.before is not None and n in run.before.tags
                  and run.before.tags[n].origin == Origin.SYNC)
    if kept and (not spec.mirror or held_back):
        warnings.append(f"tag{'' if len(kept) == 1 else 's'} {', '.join(kept)} dropped out of the newest "
                        f"{spec.tag_filter.latest}: kept, because mirror is off")
    # tags failed and nothing else happened: the runner made no repository change either
    if repo is None and not failed and run.after is None and not upstream.listed and not spec.allow_empty:
        warnings.append(f"repository {repo_id} was not created: the upstream lists no tags "
                        "(--allow-empty creates it empty)")
    added, moved, removed = tag_changes(run.before, run.after)
    summary = run.after.summary_against(run.before or RepoState()) if run.after and version else None
    return SyncResult(
        repo_id=repo_id, upstream_name=upstream.name, version=version,
        tags_selected=len([t for t in upstream.tags if t not in failed]), tags_added=added, tags_moved=moved,
        tags_removed=removed, tags_dropped=tuple(upstream.dropped), tags_failed=dict(sorted(failed.items())),
        tags_listed=upstream.listed, manifests_added=fetched.manifests_added, blobs_added=fetched.blobs_added,
        bytes_downloaded=fetched.bytes_downloaded, foreign_layers=len(fetched.foreign_layers),
        requests=client.requests,
        content_added=dict(summary.added) if summary else {},
        content_removed=dict(summary.removed) if summary else {},
        warnings=tuple(warnings), selection=upstream.selection, tags_refused=dict(upstream.refused),
        children_skipped=len(fetched.skipped),
    )
