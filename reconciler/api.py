"""Wiring: the one place where adapters (store backends, registry client, server) are
chosen and put together. The CLI and tests call these functions."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from reconciler.bundle import SCHEME as BUNDLE_SCHEME
from reconciler.bundle import feed_location
from reconciler.errors import InvalidInput, StoreError
from reconciler.model.platforms import PlatformFilter
from reconciler.model.reference import check_upstream_name
from reconciler.model.registry import RegistryConfig
from reconciler.model.repository import Repository
from reconciler.model.tagfilter import ALL_TAGS, TagFilter
from reconciler.registry.protocol import PushTarget, UpstreamSource
from reconciler.store.protocol import Store

if TYPE_CHECKING:
    from reconciler.apply.result import ApplyResult
    from reconciler.apply.runner import RepoProgress
    from reconciler.desired.model import DesiredState
    from reconciler.ops.parallel import Progress
    from reconciler.ops.result import OpResult
    from reconciler.ops.stop import StopToken
    from reconciler.ops.sync import SyncResult
    from reconciler.ops.v1.sync import V1Source
    from reconciler.plan.drift import DriftReport
    from reconciler.plan.model import Plan
    from reconciler.plan.observe import RefreshProgress
    from reconciler.plan.observed import Observed
    from reconciler.registry.shared import SharedClients

DEFAULT_STORE = "./.reconciler"
STORE_ENV = "RECONCILER_STORE"
BLOBS_ENV = "RECONCILER_BLOBS"


def store_location(explicit: str | None = None) -> str:
    """``--store`` wins, then ``$RECONCILER_STORE``, then ``./.reconciler``."""
    return explicit or os.environ.get(STORE_ENV) or DEFAULT_STORE


def blobs_location(explicit: str | None = None) -> str | None:
    """``--blobs`` wins, then ``$RECONCILER_BLOBS``; None when neither is given (a directory
    store then uses its own, or the one it recorded)."""
    return explicit or os.environ.get(BLOBS_ENV) or None


@dataclass(frozen=True)
class ServingLimits:
    """How a server replica opens its store: at most ``connections`` PostgreSQL
    connections per worker process (its threads), waiting ``db_wait`` seconds for one;
    each S3 request ``s3_timeout`` seconds per attempt, ``s3_attempts`` attempts. See
    docs/deployment.md, "Connections" and "Timeouts"."""

    connections: int = 4
    db_wait: float = 5.0
    s3_timeout: float = 3.0
    s3_attempts: int = 2


def open_store(location: str | None = None, blobs: str | None = None, *,
               serving: ServingLimits | None = None, create: bool = True) -> Store:
    """Open (creating if needed) the store at ``location``: a directory path for the
    embedded SQLite store, or ``postgresql://user@host:port/db`` for the PostgreSQL store.
    ``blobs`` is where blob bytes live (a folder or ``s3://bucket/prefix``, see
    ``reconciler.store.blobs.open_blobs``): optional for a directory store (default: inside
    it), required for a PostgreSQL store. ``serving``: open it for a server replica (short
    S3 timeouts, a pool as large as its threads, and a blob storage that cannot be reached
    yet is no error: the replica serves what needs only the database meanwhile).
    ``create=False`` (commands that only read or check): a location without a store is
    ``StoreMissing`` and nothing is created."""
    from reconciler.store.blobs.s3 import S3Timeouts

    loc = store_location(location)
    blobs = blobs_location(blobs)
    timeouts = S3Timeouts.serving(serving.s3_timeout, serving.s3_attempts) if serving else None
    if loc.startswith(("postgresql://", "postgres://")):
        if not blobs:
            raise InvalidInput("a PostgreSQL store needs --blobs (or RECONCILER_BLOBS): the folder or "
                               "s3://BUCKET/PREFIX for its blob and manifest bytes",
                               hint="every process using the store must see the same storage, e.g. "
                                    "--blobs s3://images/prod or --blobs /srv/reconciler-blobs")
        from reconciler.store.postgres import PostgresStore

        if serving is None:
            return PostgresStore(loc, blobs=blobs, create=create)
        return PostgresStore(loc, blobs=blobs, max_connections=serving.connections, pool_wait=serving.db_wait,
                             defer_blob_check=True, s3_timeouts=timeouts, create=create)
    if "://" in loc:
        raise StoreError(f"unsupported store location {loc!r}",
                         hint="give a directory path, e.g. --store ./.reconciler, or postgresql://user@host/db")
    from reconciler.store.sqlite import SQLiteStore

    return SQLiteStore(loc, blobs=blobs, s3_timeouts=timeouts, create=create)


def registry_client(config: RegistryConfig) -> UpstreamSource:
    """The upstream source for one feed: the real HTTP client, or for ``bundle:PATH`` the
    bundle reader (``reconciler.bundle.reader``)."""
    if config.url.startswith(BUNDLE_SCHEME):
        from reconciler.bundle.reader import BundleSource

        return BundleSource(config.url[len(BUNDLE_SCHEME):])
    from reconciler.registry.client import RegistryClient

    return RegistryClient(config)



def sync_repository(store: Store, repo_id: str, *, feed: str | None = None, upstream_name: str | None = None,
                    tag_filter: TagFilter = ALL_TAGS, mirror: bool = False, allow_empty: bool = False,
                    jobs: int = 16, platforms: PlatformFilter | None = None,
                    username_env: str | None = None, password_env: str | None = None,
                    auth_file: str | None = None, tls_verify: bool = True, ca_file: str | None = None,
                    timeout: float = 60.0, retries: int = 4, progress: Progress | None = None, lock_timeout: float = 60.0,
                    source_factory: Callable[[RegistryConfig], UpstreamSource] | None = None) -> SyncResult:
    """``reconciler sync``: the repos.yaml entry ``{feed, upstream_name, tags, mirror,
    allow_empty}`` for this one repository, planned and applied under the store lock
    (``apply.sync_command``); the repository is created when it does not exist, and
    ``feed``/``upstream_name`` (default: the repository's) are recorded on it. A failed
    sync changes nothing; neither does an upstream that lists no tags for a new repository,
    unless ``allow_empty``."""
    from reconciler.apply.sync_command import sync_command

    config = RegistryConfig(url="", username_env=username_env, password_env=password_env, auth_file=auth_file,
                            tls_verify=tls_verify, ca_file=ca_file, max_concurrency=jobs, timeout=timeout,
                            retries=retries)
    return sync_command(store, repo_id, feed=feed_location(feed) if feed else None, upstream=upstream_name,
                        config=config, factory=source_factory or registry_client, tag_filter=tag_filter,
                        mirror=mirror, allow_empty=allow_empty, platforms=platforms, progress=progress,
                        lock_timeout=lock_timeout)


def sync_v1_repository(store: Store, repo_id: str, *, feed: str | None = None, upstream_name: str | None = None,
                       username_env: str | None = None, password_env: str | None = None,
                       auth_file: str | None = None, tls_verify: bool = True, ca_file: str | None = None,
                       timeout: float = 60.0, retries: int = 4, lock_timeout: float = 60.0) -> OpResult:
    """``reconciler sync --v1``: v1 images and v1 tags from the feed's v1 API (what
    ``enable_v1`` does in repos.yaml), under the store lock; feed and upstream name default
    to the repository's and are recorded on a repository this call creates. A failed sync
    of a repository it created removes it again. (No plan: ``apply.commands``.)"""
    from reconciler.apply.oneoff import run_command
    from reconciler.ops.v1.sync import v1_sync
    from reconciler.registry.v1client import V1Client

    def sync(store: Store) -> OpResult:
        with _sync_target(store, repo_id, feed, upstream_name,
                          "--v1 --feed https://crane.example.com --upstream-name busybox") as (_, url, name):
            source = V1Client(RegistryConfig(url=url, username_env=username_env, password_env=password_env,
                                             auth_file=auth_file, tls_verify=tls_verify, ca_file=ca_file,
                                             timeout=timeout, retries=retries))
            try:
                return v1_sync(store, source, repo_id, name)
            finally:
                source.close()

    return run_command(store, sync, lock_timeout=lock_timeout)


@contextmanager
def _sync_target(store: Store, repo_id: str, feed: str | None, upstream_name: str | None,
                 example: str) -> Iterator[tuple[Repository | None, str, str]]:
    """The repository a sync writes to (None: created here), and its feed and upstream
    name (given, else the repository's). A repository created here is removed again when
    anything in the ``with`` body fails (opening the client included): a failure changes
    nothing."""
    repo = store.repository_find(repo_id)
    feed = feed_location(feed) if feed else (repo.feed if repo else None)
    upstream_name = upstream_name or (repo.upstream_name if repo else None)
    if not feed or not upstream_name:
        raise InvalidInput(f"repository {repo_id!r} has no {'feed' if not feed else 'upstream name'} to sync from",
                           hint=f"give them: reconciler sync {repo_id} {example}")
    check_upstream_name(upstream_name, feed)  # before the registry answers a bare 404 (or an empty list)
    if repo is None:
        store.repository_create(repo_id, feed=feed, upstream_name=upstream_name)
    try:
        yield repo, feed, upstream_name
    except BaseException:
        if repo is None:
            store.repository_delete(repo_id)
        raise


# -- plan and apply -----------------------------------------------------------------------

class UpstreamPool:
    """The upstream clients of one plan or apply: one per registry, shared by every
    repository (one ping, one connection pool, ``max_concurrency`` honoured across
    repositories). Calling it is the refresh/apply source factory; what it returns is
    borrowed (its ``close()`` does nothing); the pool closes the clients at the end."""

    def __init__(self) -> None:
        # made on first use: a --no-refresh plan never imports the HTTP client
        self.shared: SharedClients | None = None
        self._lock = threading.Lock()
        #: bundle feeds, opened (and their members indexed) once per plan or apply
        self._bundles: dict[str, UpstreamSource] = {}
        #: push clients, one per target registry (the plan's HEADs and apply's pushes share it)
        self._push: dict[RegistryConfig, PushTarget] = {}

    def push_target(self, spec: RegistryConfig) -> PushTarget:
        """The push client of a target registry (``plan.pushes.PushTargets``)."""
        with self._lock:
            if spec not in self._push:
                from reconciler.registry.push import PushClient

                self._push[spec] = PushClient(spec)
            return self._push[spec]

    def __call__(self, spec: RegistryConfig) -> UpstreamSource:
        with self._lock:  # called from the refresh's and the apply's worker threads
            if spec.url.startswith(BUNDLE_SCHEME):
                if spec.url not in self._bundles:
                    self._bundles[spec.url] = registry_client(spec)
                return self._bundles[spec.url]  # its close() does nothing: safe to share
            if self.shared is None:
                from reconciler.registry.shared import SharedClients

                self.shared = SharedClients()
        return self.shared.borrow(spec)

    def connect_ahead(self, desired: DesiredState, targets: Sequence[str] = ()) -> None:
        """Ping the registries the refresh of ``targets`` (default: every repository) will
        ask, each on a thread of its own, so the round trips overlap importing the plan's
        modules and reading the store (``SharedClients.connect_ahead``)."""
        wanted = set(targets) if targets else None
        feeds = {s.feed for r, s in desired.repositories.items()
                 if s.feed is not None and s.upstream_name and (wanted is None or r in wanted)
                 and not s.feed.url.startswith(BUNDLE_SCHEME)}
        if not feeds:
            return
        with self._lock:
            if self.shared is None:
                from reconciler.registry.shared import SharedClients

                self.shared = SharedClients()
        for feed in sorted(feeds, key=lambda f: f.url):
            self.shared.connect_ahead(feed)

    def close(self) -> None:
        if self.shared is not None:
            self.shared.close()
        for client in self._push.values():
            client.close()

    def __enter__(self) -> UpstreamPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def v1_source(spec: RegistryConfig) -> V1Source:
    """A v1 registry API client for a feed of repos.yaml (v1 sync, ``enable_v1``)."""
    from reconciler.registry.v1client import V1Client

    return V1Client(spec)


def _plan(store: Store, desired: DesiredState, *, targets: Sequence[str], refresh: bool,
          prune_repositories: bool, progress: RefreshProgress | None = None) -> Plan:
    with UpstreamPool() as sources:
        if refresh:
            sources.connect_ahead(desired, targets)
        return _plan_observed(store, desired, sources, targets=targets, refresh=refresh,
                              prune_repositories=prune_repositories, progress=progress)[0]


def _plan_observed(store: Store, desired: DesiredState, sources: UpstreamPool, *, targets: Sequence[str],
                   refresh: bool, prune_repositories: bool, progress: RefreshProgress | None = None,
                   stop: StopToken | None = None) -> tuple[Plan, Observed]:
    from reconciler.plan.make import make_plan as plan_from
    from reconciler.store.sql.grace import grace_seconds

    return plan_from(store, desired, sources, targets=targets, upstreams=refresh,
                     prune_repositories=prune_repositories, progress=progress, stop=stop, v1_sources=v1_source,
                     publish_grace=grace_seconds() > 0)  # the grace this process records


def plan_observed(store: Store, desired: DesiredState, sources: UpstreamPool, *, targets: Sequence[str] = (),
                  prune_repositories: bool = False) -> tuple[Plan, Observed]:
    """A refreshed plan and what its refresh observed (``watch`` applies both)."""
    return _plan_observed(store, desired, sources, targets=targets, refresh=True,
                          prune_repositories=prune_repositories)


def drift_report(store: Store, path: str | Path, *, verify_content: bool = False,
                 prune_repositories: bool = False) -> DriftReport:
    """``reconciler drift``: plan (writes nothing), then say why each change is needed;
    with the store's own problems (``store check``, quick unless ``verify_content``)."""
    from reconciler.desired.loader import load_desired
    from reconciler.plan.drift import drift_for

    desired = load_desired(path)
    plan = _plan(store, desired, targets=(), refresh=True, prune_repositories=prune_repositories)
    report = store.check(verify_content=verify_content)
    return drift_for(store, desired, plan, report.problems)


def make_plan(store: Store, path: str | Path, *, targets: Sequence[str] = (), refresh: bool = True,
              prune_repositories: bool = False, progress: RefreshProgress | None = None) -> Plan:
    """``reconciler plan``: load repos.yaml, refresh, diff. Writes nothing."""
    from reconciler.desired.loader import load_desired
    from reconciler.model.gcpause import paused_gc

    # without the refresh no request is made, nothing makes cyclic garbage worth collecting
    # early, and nearly everything made is kept: one pause over loading, the store read and
    # the diff, so the collector walks what they keep once instead of after each of them
    with paused_gc() if not refresh else nullcontext():
        return _plan(store, load_desired(path), targets=targets, refresh=refresh,
                     prune_repositories=prune_repositories, progress=progress)


def apply_file(store: Store, path: str | Path, *, targets: Sequence[str] = (), lock_timeout: float = 60.0,
               prune_repositories: bool = False, progress: RepoProgress | None = None,
               refresh_progress: RefreshProgress | None = None, stop: StopToken | None = None,
               skip_unavailable: bool = False,
               on_plan: Callable[[Plan], None] | None = None) -> tuple[Plan, ApplyResult]:
    """``reconciler apply -f``: plan and apply under one hold of the store lock (so
    nothing can change in between). ``on_plan`` sees the plan before anything is applied
    (the CLI prints it); ``stop`` ends the apply early (journaled ``interrupted``);
    ``skip_unavailable`` applies what does not depend on an upstream that could not be
    refreshed instead of refusing the plan."""
    from reconciler.apply.session import apply_desired
    from reconciler.desired.loader import load_desired
    from reconciler.store.sql.grace import grace_seconds

    desired = load_desired(path)
    # one pool for the plan and the apply: the apply reuses the refresh's connections and tokens
    with UpstreamPool() as sources:
        sources.connect_ahead(desired, targets)
        return apply_desired(store, desired, sources, command=f"apply -f {path}", targets=targets,
                             lock_timeout=lock_timeout, prune_repositories=prune_repositories, progress=progress,
                             refresh_progress=refresh_progress, stop=stop, skip_unavailable=skip_unavailable,
                             on_plan=on_plan, v1_sources=v1_source, publish_grace=grace_seconds() > 0)


def apply_saved_plan(store: Store, plan_path: str | Path, *, lock_timeout: float = 60.0,
                     progress: RepoProgress | None = None, stop: StopToken | None = None,
                     skip_unavailable: bool = False,
                     on_plan: Callable[[Plan], None] | None = None) -> tuple[Plan, ApplyResult]:
    """``reconciler apply PLAN``: exactly the reviewed actions and digests; a plan that
    was edited, or made against another store generation or desired file, is refused."""
    from reconciler.apply.session import apply_saved
    from reconciler.plan.model import Plan as PlanValue
    from reconciler.plan.seal import key_from_env

    plan = PlanValue.read(plan_path, key=key_from_env())  # refused unless its digest (and HMAC) match
    with UpstreamPool() as sources:
        result = apply_saved(store, plan, sources, command=f"apply {plan_path}", lock_timeout=lock_timeout,
                             progress=progress, stop=stop, skip_unavailable=skip_unavailable, on_plan=on_plan,
                             v1_sources=v1_source)
    return plan, result


def push_repository(store: Store, repo_id: str, to: str, *, tags: Sequence[str] = (),
                    username_env: str | None = None, password_env: str | None = None, auth_file: str | None = None,
                    tls_verify: bool = True, ca_file: str | None = None, timeout: float = 60.0, retries: int = 4,
                    jobs: int = 16, lock_timeout: float = 60.0,
                    progress: RepoProgress | None = None) -> tuple[Plan, ApplyResult]:
    """``reconciler push REPO --to REGISTRY_URL/NAME``: the one-off push, planned and
    applied as a ``push:`` target of repos.yaml is (``apply.pushcmd``)."""
    from reconciler.apply.pushcmd import push_one_off

    url, name = split_push_target(to)
    config = RegistryConfig(url=url, username_env=username_env, password_env=password_env, auth_file=auth_file,
                            tls_verify=tls_verify, ca_file=ca_file, timeout=timeout, retries=retries,
                            max_concurrency=jobs, name=url.split("://", 1)[-1])
    with UpstreamPool() as pool:
        return push_one_off(store, repo_id, config, name, TagFilter(tuple(tags)), pool, lock_timeout=lock_timeout,
                            command=f"push {repo_id} --to {to}", progress=progress)


def split_push_target(to: str) -> tuple[str, str]:
    """``https://harbor.example.com/team/app`` -> (registry URL, ``team/app``); a URL
    without a scheme is https (``http://`` must be written)."""
    text = to.strip().rstrip("/")
    scheme, sep, rest = text.partition("://")
    if not sep:
        scheme, rest = "https", text
    host, _, name = rest.partition("/")
    if not host or not name:
        raise InvalidInput(f"--to {to!r}: expected REGISTRY_URL/NAME, e.g. https://harbor.example.com/team/app")
    from reconciler.model import validate_repository_name

    validate_repository_name(name, what="target repository name")
    return f"{scheme}://{host}", name
