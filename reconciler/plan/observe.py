"""Observe (the plan's refresh): read the store and the upstreams into an ``Observed``
(the diff's input).

The only I/O of planning. It records the store generation first (so any write after it
makes the plan stale), reads every repository's latest state and the manifests they hold,
and for each repository with a feed lists the upstream tags, applies the filter and HEADs
each selected tag (``ops.refresh.refresh_upstream``), in parallel across repositories
with a bound.

Decision (issue 7): to report exact blobs and bytes to download, refresh also GETs the
manifests and indexes the store lacks (small; verified by digest) and keeps them *in
memory*: nothing is written, so planning never bumps the store generation and never
makes someone else's saved plan stale. Blob sizes come from those manifests'
descriptors; blobs are never fetched here.

Upload files are hashed (sha256 of the file) so a saved plan can refuse a changed file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
from collections.abc import Callable, Container, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from reconciler.desired.model import DesiredState, RepositorySpec
from reconciler.errors import InvalidInput, ReconcilerError
from reconciler.model import Digest, Index, Manifest
from reconciler.model.content import ContentSet
from reconciler.model.gcpause import paused_gc
from reconciler.model.platforms import PlatformFilter
from reconciler.model.reference import normalize_upstream_name
from reconciler.model.registry import RegistryConfig
from reconciler.ops.cascade import RefGraph
from reconciler.ops.fetch import skipped_notes
from reconciler.ops.graph import load_graph
from reconciler.ops.platforms import refused_tags, skipped_sizes
from reconciler.ops.referrers import Discovered, discover
from reconciler.ops.refresh import UpstreamView, failure_text, refresh_upstream
from reconciler.ops.state import RepoState
from reconciler.ops.stop import StopToken, wait_all
from reconciler.ops.transfer.adapters import MemorySink, RegistrySource
from reconciler.ops.transfer.walk import TransferPolicy, transfer
from reconciler.plan.model import RefreshInfo
from reconciler.plan.observed import Observed, ObservedRepo, UploadInfo, UpstreamTags
from reconciler.plan.signature_facts import classic_types, fetch_payloads, signature_facts, verify_scope
from reconciler.plan.v1refresh import V1SourceFactory, refresh_v1
from reconciler.registry.protocol import UpstreamSource
from reconciler.store.protocol import Store

log = logging.getLogger(__name__)

SourceFactory = Callable[[RegistryConfig], UpstreamSource]
#: (source, repository spec, jobs, names of the tags the store holds) -> the upstream's
#: selected tags and their digests, the manifests GOT while resolving, and the tags that
#: could not be resolved
Resolver = Callable[[UpstreamSource, RepositorySpec, int, Container[str]], UpstreamView]

#: at least this many upstream repositories are refreshed at once (each with its own jobs)
MAX_PARALLEL_REPOS = 4


def repos_in_flight(feeds: Iterable[RepositorySpec]) -> int:
    """How many repositories to refresh at once: enough that every registry's
    ``max_concurrency`` slots stay busy. A repository starts with one tag list and only
    then knows its HEADs, so with fewer repositories than slots in flight the slots idle
    a round trip per repository (across 50 ms, 4 at once took 20 round trips for the
    fixture set's 121 requests where 8 suffice). The slots, not these threads, bound
    the requests a registry sees."""
    slots = {s.feed.url: s.feed.max_concurrency for s in feeds if s.feed is not None}
    return max(MAX_PARALLEL_REPOS, sum(slots.values()))


def default_resolver(source: UpstreamSource, spec: RepositorySpec, jobs: int, known: Container[str]) -> UpstreamView:
    assert spec.upstream_name is not None and spec.feed is not None
    # tags the store holds are HEADed, new ones GOT (their manifests are needed anyway)
    return refresh_upstream(source, upstream_name(spec), spec.tag_filter, jobs=jobs, known=known)


def upstream_name(spec: RepositorySpec) -> str:
    """The name to ask the feed for (``busybox`` means ``library/busybox`` on Docker Hub)."""
    assert spec.feed is not None and spec.upstream_name is not None
    return normalize_upstream_name(spec.feed.url, spec.upstream_name)


@dataclass
class _UpstreamResult:
    repo_id: str
    tags: UpstreamTags
    manifests: dict[Digest, Manifest | Index] = field(default_factory=dict)
    requests: int = 0
    stored: StoredWalk | None = None
    #: bytes a platform filter saves, per index child left out of new content
    skipped_sizes: dict[Digest, int] = field(default_factory=dict)
    #: payloads of new signatures, for a ``verify:`` policy (plan/signature_facts.py)
    payloads: dict[Digest, bytes] = field(default_factory=dict)


def file_sha256(path: Path) -> str:
    """The sha256 of an upload file; of a directory (an OCI image layout), of its tree: each
    entry's relative path, and a regular file's bytes, a symbolic link's target, another
    entry's type (never followed nor read: the upload readers refuse those)."""
    h = hashlib.sha256()
    try:
        if path.is_dir():
            entries = [Path(top, n) for top, dirs, files in os.walk(path) for n in dirs + files]  # links not followed
            for entry in sorted(entries):
                h.update(f"{entry.relative_to(path)}\0".encode())
                if entry.is_symlink():
                    h.update(f"link {os.readlink(entry)}\0".encode())
                elif entry.is_file():
                    with open(entry, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                else:
                    h.update(f"{'dir' if entry.is_dir() else 'other'}\0".encode())
            return "sha256:" + h.hexdigest()
        with open(path, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    except OSError as exc:
        raise InvalidInput(f"cannot read upload file {path}: {exc.strerror or exc}",
                           hint="fix the path in repos.yaml (relative paths start at the YAML file's directory)") from exc
    return "sha256:" + h.hexdigest()


@dataclass
class StoredWalk:
    """What the walk met in the store: parsed indexes (their children the store lacks, or
    a platform filter must judge them) and every stored manifest/index passed through
    (their recorded references join the plan's graph)."""

    indexes: dict[Digest, Index] = field(default_factory=dict)
    seen: set[Digest] = field(default_factory=set)
    #: children a platform filter left out of indexes this refresh fetched (new content):
    #: what the plan says it does not download
    skipped_new: set[Digest] = field(default_factory=set)
    #: some repository lacks index children on purpose (a platform subset), so a stored
    #: index may lack children in the store too
    partial: bool = False


def _fetch_missing_manifests(store: Store, source: RegistrySource, roots: Iterable[Digest],
                             known: dict[Digest, Manifest | Index], jobs: int,
                             platforms: PlatformFilter | None = None, stored: StoredWalk | None = None,
                             gone: set[Digest] | None = None) -> dict[Digest, str]:
    """GET, level by level, the manifests under ``roots`` that neither the store nor
    ``known`` holds (``known`` may hold indexes the resolver GOT: their children are
    walked); adds them to ``known`` (in memory only). Returns the roots whose content
    could not be fetched, with why: only the tags on those fail, the others are planned.
    The walk is the one every content move uses (``ops.transfer``), into a sink that
    writes nothing, bounded in depth as the apply's fetch and uploads are. With
    ``platforms`` an index's other platforms are not walked (the walk's policy, as the
    apply's fetch). A stored index is walked too when the store lacks some of its
    children (another repository mirrors a platform subset of it) or a filter must judge
    it; ``stored`` collects what was read from the store. A root the upstream no longer
    has (404: deleted since its tag was resolved) goes into ``gone`` instead: its tags
    were deleted while we looked, as a sync drops them."""
    stored = stored if stored is not None else StoredWalk()
    sink = MemorySink(store, read_indexes=platforms is not None, partial=stored.partial)
    policy = TransferPolicy(jobs=jobs, blobs=False, keep_going=True, platforms=platforms,
                            skip_missing_roots=gone is not None)
    moved = transfer(source, sink, roots, policy=policy, prefetched=dict(known))
    if gone is not None:
        gone |= moved.missing_roots
    fetched = {m.digest: m for m in moved.fetched}
    known.update(fetched)
    stored.seen |= sink.seen
    stored.indexes.update(sink.indexes)
    stored.skipped_new |= {c for parent, left in moved.left_out.items() if parent in fetched
                           for c in left if not store.manifest_has(c)}
    return {root: failure_text(exc) for root, exc in moved.failed.items()}


def _refresh_one(store: Store, spec: RepositorySpec, sources: SourceFactory, resolver: Resolver,
                 held_tags: Container[str], partial: bool = False, payloads: bool = False) -> _UpstreamResult:
    """One repository's upstream; a failure is recorded on its result (the plan shows that
    repository with the error and plans the others) instead of ending the whole plan.
    ``payloads``: also read the payloads of new signatures (a ``verify:`` policy reads them)."""
    try:
        return _refresh_upstream(store, spec, sources, resolver, held_tags, partial, payloads)
    except ReconcilerError as exc:
        # the plan reports it (once); a log line too would print it twice
        log.info("%s: refreshing upstream %s failed: %s", spec.id, spec.upstream_name, exc.message)
        return _UpstreamResult(spec.id, UpstreamTags(upstream_name(spec), {}, 0, error=exc.message))


def _discover(store: Store, source: UpstreamSource, name: str, spec: RepositorySpec, view: UpstreamView,
              known: dict[Digest, Manifest | Index]) -> tuple[Discovered, str | None]:
    """The referrers upstream of the selected tags' images (``referrers:``; ops/referrers.py),
    and why they could not be looked up (the tags are planned all the same). The cosign
    manifests read on the way join ``known``."""
    if not spec.referrers.enabled:
        return Discovered(), None
    try:
        found = discover(source, name, view.names, sorted(set(view.tags.values()), key=str), spec.referrers)
    except ReconcilerError as exc:
        log.info("%s: looking up referrers failed: %s", spec.id, exc.message)  # the plan warns
        return Discovered(), failure_text(exc)
    known.update({d: m for d, m in found.manifests.items() if not store.manifest_has(d)})
    return found, None


def _refresh_upstream(store: Store, spec: RepositorySpec, sources: SourceFactory, resolver: Resolver,
                      held_tags: Container[str], partial: bool = False, payloads: bool = False) -> _UpstreamResult:
    assert spec.feed is not None and spec.upstream_name is not None
    jobs = spec.feed.max_concurrency
    source = sources(spec.feed)
    try:
        before = source.stats.total
        view = resolver(source, spec, jobs, held_tags)
        known: dict[Digest, Manifest | Index] = {d: m for d, m in view.manifests.items()
                                                 if not store.manifest_has(d)}
        name = upstream_name(spec)
        found, referrers_error = _discover(store, source, name, spec, view, known)
        stored = StoredWalk(partial=partial)
        content = RegistrySource(source, name)
        roots = [*view.tags.values(), *(f.digest for f in found.all())]
        gone: set[Digest] = set()
        bad_roots = _fetch_missing_manifests(store, content, roots, known, jobs, spec.platforms, stored, gone)
        for d in gone - set(view.tags.values()):  # a listed referrer that is gone: a warning, as any not fetched
            bad_roots.setdefault(d, f"the upstream no longer has manifest {d} (404)")
        gone &= set(view.tags.values())
        refused: dict[str, str] = {}
        sizes: dict[Digest, int] = {}
        if spec.platforms is not None:
            refused = refused_tags(store, content, {t: d for t, d in view.tags.items() if d not in bad_roots},
                                   known, spec.platforms)
            sizes = skipped_sizes(store, content, stored.skipped_new, jobs,
                                  {b.digest for m in known.values() if isinstance(m, Manifest) for b in m.blobs()})
        failed = dict(view.failed)
        dropped = view.dropped + tuple(sorted(t for t, d in view.tags.items() if d in gone))
        by_digest = {d: t for t, d in sorted(view.tags.items(), reverse=True)}  # the first tag by name
        tags: dict[str, Digest] = {}
        for tag, digest in view.tags.items():
            if digest in gone:
                log.info("%s: tag %s was deleted upstream meanwhile: skipped", spec.id, tag)
            elif digest in bad_roots:
                log.info("%s: tag %s failed: %s", spec.id, tag, bad_roots[digest])  # the plan shows it
                failed[tag] = bad_roots[digest]
            elif tag not in refused:
                tags[tag] = digest
        referrers = {subject: tuple(f for f in fs if f.digest not in bad_roots)
                     for subject, fs in found.by_subject.items()}
        not_synced = [f"referrer {f.digest} of {f.subject} is not synced: {bad_roots[f.digest]}"
                      for f in found.all() if f.digest in bad_roots]
        signed = fetch_payloads(store, content, known.values()) if payloads else {}
        return _UpstreamResult(spec.id, UpstreamTags(name, tags, view.listed, failed=failed, dropped=dropped,
                                                     notes=(*skipped_notes(known.values(), by_digest), *not_synced),
                                                     outranked=view.outranked, selection=view.selection,
                                                     refused=refused, referrers=referrers,
                                                     referrers_error=referrers_error),
                               known, source.stats.total - before, stored, sizes, signed)
    finally:
        source.close()


def platform_facts(store: Store, desired: DesiredState, wanted: set[str], repos: Mapping[str, ObservedRepo],
                   results: Iterable[_UpstreamResult], fetched: Mapping[Digest, Manifest | Index], graph: RefGraph,
                   ) -> tuple[dict[Digest, Index], RefGraph, dict[Digest, int]]:
    """What the diff needs to split indexes by platform: every parsed index at hand
    (fetched, or read from the store by the walks), the graph with the stored content
    the walks passed through, and the sizes of what platform filters leave out. The
    indexes of repositories that ``copy`` entries with ``platforms`` read are loaded too."""
    indexes = {d: m for d, m in fetched.items() if isinstance(m, Index)}
    seen: set[Digest] = set()
    sizes: dict[Digest, int] = {}
    for res in results:
        if res.stored is not None:
            indexes.update(res.stored.indexes)
            seen |= res.stored.seen
        sizes.update(res.skipped_sizes)
    sources = {c.from_repo for r, spec in desired.repositories.items() if r in wanted
               for c in spec.copies if c.platforms is not None}
    for source in sorted(sources):
        for d in repos[source].state.content.indexes if source in repos else ():
            if d not in indexes:
                m = store.manifest_get(d)
                if isinstance(m, Index):
                    indexes[d] = m
    seen = {d for d in seen if d not in graph}
    if seen:
        graph = graph.merged(RefGraph.from_refs(store.manifest_refs(seen), store.manifest_subjects(seen)))
    return indexes, graph, sizes


def observe_store(store: Store) -> tuple[int, dict[str, ObservedRepo]]:
    """The store generation (first: any later write makes the plan stale) and every
    repository's latest state, read in bulk."""
    generation = store.generation()
    versions = store.versions_latest()
    repos = {repo.id: ObservedRepo(repo, RepoState.of(versions[repo.id]))
             for repo in store.repository_list() if repo.id in versions}
    return generation, repos


#: (upstreams refreshed, upstreams in all, the repository just done): progress for the CLI
RefreshProgress = Callable[[int, int, str], None]


def refresh(store: Store, desired: DesiredState, sources: SourceFactory | None, *, upstreams: bool = True,
            repo_ids: Iterable[str] | None = None, resolver: Resolver = default_resolver,
            v1_sources: V1SourceFactory | None = None, progress: RefreshProgress | None = None,
            publish_grace: bool = True, stop: StopToken | None = None) -> Observed:
    """Observe the store and (unless ``upstreams`` is False) the upstreams of the
    repositories in ``repo_ids`` (default: all desired repositories); ``progress`` hears
    of each upstream refreshed. ``publish_grace``: see ``Observed.publish_grace``.
    ``stop``: a requested stop ends the refresh at once (``Interrupted``), not when the
    slowest upstream answers."""
    started = time.monotonic()
    wanted = set(repo_ids) if repo_ids is not None else set(desired.repositories)
    with paused_gc():  # a big store's rows become hundreds of thousands of objects, all kept
        generation, repos = observe_store(store)
        # the graph of what the planned repositories hold (the others are only listed/counted)
        planned = [r.state.content for repo_id, r in repos.items() if repo_id in wanted]
        graph = load_graph(store, ContentSet(manifests=frozenset().union(*(c.manifests for c in planned)),
                                             indexes=frozenset().union(*(c.indexes for c in planned))))
    feeds = [s for r, s in sorted(desired.repositories.items()) if r in wanted and s.feed and s.upstream_name]
    checked = verify_scope(desired, wanted)  # repositories whose signatures a verify: policy reads
    results: list[_UpstreamResult] = []
    if upstreams and feeds:
        if sources is None:
            raise ValueError("refresh of upstreams needs a source factory")
        done = [0]
        count = threading.Lock()

        # a repository mirroring a platform subset leaves stored indexes without some children
        partial = any(r.state.absent for r in repos.values())

        def one(spec: RepositorySpec) -> _UpstreamResult:
            result = _refresh_one(store, spec, sources, resolver, repos[spec.id].state.tags if spec.id in repos else (),
                                  partial, spec.id in checked)
            if progress is not None:
                with count:
                    done[0] += 1
                    progress(done[0], len(feeds), spec.id)
            return result

        pool = ThreadPoolExecutor(max_workers=min(repos_in_flight(feeds), len(feeds)))
        try:
            futures = [pool.submit(one, s) for s in feeds]
            wait_all(futures, stop)  # type: ignore[arg-type]
            results = [f.result() for f in futures]
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)  # a stop does not wait for a slow upstream
            raise
        pool.shutdown(wait=True)
    fetched: dict[Digest, Manifest | Index] = {}
    for res in results:
        fetched.update(res.manifests)
    if fetched:
        graph = graph.merged(RefGraph.from_manifests(fetched.values()))
    indexes, graph, skipped = platform_facts(store, desired, wanted, repos, results, fetched, graph)
    sizes: dict[Digest, int] = {}
    for m in fetched.values():
        if isinstance(m, Manifest):
            for d in m.blobs():
                sizes[d.digest] = d.size or 0
    missing_blobs = store.blobs_missing(sizes)
    uploads: dict[tuple[str, str], UploadInfo] = {}
    # file -> what it holds: a file several repositories upload is hashed and read once
    inspected: dict[str, tuple[UploadInfo, list[Manifest | Index]]] = {}
    for repo_id, spec in sorted(desired.repositories.items()):
        if repo_id not in wanted:
            continue
        for upload in spec.uploads:
            if upload.v1:
                continue  # read by refresh_v1
            file = str(upload.file)
            if file not in inspected:
                # imported here: the upload readers (tar, gzip, docker save) cost a plan
                # without uploads ~10 ms of start-up
                from reconciler.plan.uploads import upload_info

                inspected[file] = upload_info(Path(file), file_sha256(Path(file)))
            uploads[(repo_id, file)] = inspected[file][0]
    upload_manifests = [m for _, manifests in inspected.values() for m in manifests]
    if upload_manifests:
        graph = graph.merged(RefGraph.from_manifests(upload_manifests))
    # retention's input: the versions of the repositories that keep only the newest N
    history = store.version_history(r for r, spec in desired.repositories.items()
                                    if r in wanted and r in repos and spec.retain_versions is not None)
    signatures, payloads = signature_facts(store, graph, repos, checked, fetched,
                                           {d: b for r in results for d, b in r.payloads.items()}) \
        if checked else ({}, {})
    v1, v1_uploads, v1_upstreams = refresh_v1(store, desired, wanted, stored=repos.keys(), file_sha256=file_sha256,
                                              sources=v1_sources, upstreams=upstreams)
    info = RefreshInfo(refreshed=upstreams, upstreams=len(results),
                       tags=sum(len(r.tags.tags) for r in results), seconds=time.monotonic() - started,
                       requests=sum(r.requests for r in results))
    log.info("refreshed %d upstream repositories (%d tags, %d requests, %d manifests fetched) in %.1f s",
             info.upstreams, info.tags, info.requests, len(fetched), info.seconds)
    return Observed(
        generation=generation, repos=repos, graph=graph,
        missing_blobs={d: sizes[d] for d in missing_blobs},
        missing_manifests=frozenset(fetched), manifests=fetched,
        upstreams={r.repo_id: r.tags for r in results},
        uploads=uploads, refresh=info, v1=v1, v1_uploads=v1_uploads, v1_upstreams=v1_upstreams,
        history=history, publish_grace=publish_grace,
        indexes=indexes, skipped_sizes=skipped, signatures=signatures, payloads=payloads,
        classic_types=classic_types(store, desired, wanted, repos, fetched, {r.repo_id: r.tags for r in results}),
    )
