"""Sync: make a repository hold what an upstream repository offers
(docs/original-system.md, "Sync").

``sync`` = ``refresh_upstream`` (tag list, filter, HEAD per tag) + ``fetch_content``
(only what the store lacks, verified) + ``sync_state`` (pure: new tag map and content) +
one ``version_commit``. Nothing becomes visible before the commit, so a failure anywhere
leaves the repository exactly as it was.

Tags set by sync get origin ``sync``. Additive by default (as Pulp 2); with ``mirror``,
synced tags that vanished upstream (within the tag filter) are removed, and the content
that only they (or the old targets of moved synced tags) needed is removed with the
remove cascade of ``reconciler.ops.cascade``: what a remaining tag or index still needs
stays. "Vanished" means the tag list no longer names it: a tag the list names but that
could not be resolved or fetched is never removed.

One tag that cannot be resolved or fetched fails that tag only (``tags_failed``, with
the reason): it keeps what it pointed at, the other tags are synced and committed.
"""


from __future__ import annotations

import dataclasses
import functools
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from reconciler.errors import RateLimited, ReconcilerError
from reconciler.model import Digest
from reconciler.model.content import ContentSet, Origin, TagEntry
from reconciler.model.platforms import PlatformFilter
from reconciler.model.tagfilter import ALL_TAGS, TagFilter
from reconciler.ops.cascade import RefGraph, cascade_remove
from reconciler.ops.fetch import FetchResult, fetch_content, merge_fetches
from reconciler.ops.parallel import Progress, ProgressEvent
from reconciler.ops.platforms import refused_tags
from reconciler.ops.refresh import UpstreamView, failure_text, refresh_upstream
from reconciler.ops.state import RepoState
from reconciler.registry.protocol import UpstreamSource
from reconciler.store.protocol import Store

__all__ = [
    "FetchResult", "Progress", "ProgressEvent", "RepoState", "SyncResult", "UpstreamView",
    "fetch_content", "refresh_upstream", "sync", "sync_state", "tag_changes",
]

log = logging.getLogger(__name__)


def sync_state(state: RepoState, upstream: UpstreamView, closure: ContentSet, tag_filter: TagFilter = ALL_TAGS,
               *, mirror: bool = False, graph: RefGraph | None = None,
               absent: frozenset[Digest] = frozenset()) -> RepoState:
    """The repository state after a sync (pure).

    Every upstream tag is set to its digest with origin ``sync`` (a tag that already
    points there keeps its entry, so an unchanged upstream makes no new version) and the
    closure is added. With ``mirror``, synced tags that match the filter but are gone
    upstream are removed, and the cascade removes what only they, or the old targets of
    moved synced tags, needed (the ops cascade, ``with_targets``); ``graph`` (the
    reference graph of the old content and the closure) is required then. ``absent``:
    index children the fetch left out (platforms not mirrored)."""
    tags: dict[str, TagEntry] = dict(state.tags)
    moved_from: set[Digest] = set()
    for name, digest in upstream.tags.items():
        old = tags.get(name)
        if old is not None and old.digest == digest:
            continue
        if old is not None and old.origin == Origin.SYNC:
            moved_from.add(old.digest)
        tags[name] = TagEntry(digest, Origin.SYNC)
    new = RepoState(state.content.union(closure), tags, state.absent | absent)
    if not mirror:
        return new
    if graph is None:
        raise ValueError("sync_state(mirror=True) needs the reference graph for the cascade")
    vanished = {n for n, e in state.tags.items() if e.origin == Origin.SYNC and n not in upstream.tags
                and n not in upstream.unresolved and tag_filter.matches(n)}
    if not vanished and not moved_from:
        return new
    # The old targets of moved tags are cascade roots too, but naming them as manifests
    # would remove every tag on them (and be refused when an index lists them). So they
    # get placeholder tags (not valid tag names, never committed) that are removed
    # together with the vanished tags, with their targets.
    placeholders = {f"\0moved-from:{d}": TagEntry(d, Origin.SYNC) for d in moved_from}
    removal = cascade_remove(new.with_tags(placeholders), graph, tags=vanished | placeholders.keys(),
                             with_targets=True)
    return removal.state


def tag_changes(old: RepoState, new: RepoState) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(added, moved, removed) tag names between two states."""
    added = sorted(n for n in new.tags if n not in old.tags)
    moved = sorted(n for n, e in new.tags.items() if n in old.tags and old.tags[n].digest != e.digest)
    removed = sorted(n for n in old.tags if n not in new.tags)
    return tuple(added), tuple(moved), tuple(removed)


@dataclass(frozen=True)
class SyncResult:
    """What one sync did. ``version`` is the new version number, None when nothing
    changed. ``manifests_added``/``blobs_added``/``bytes_downloaded`` count what was
    downloaded into the store; ``content_added``/``content_removed`` what the new
    version added to / removed from the repository, by kind."""

    repo_id: str
    upstream_name: str
    version: int | None
    tags_selected: int = 0
    tags_added: tuple[str, ...] = ()
    tags_moved: tuple[str, ...] = ()
    tags_removed: tuple[str, ...] = ()
    tags_dropped: tuple[str, ...] = ()
    #: tag -> why it could not be synced (it keeps its old target)
    tags_failed: Mapping[str, str] = field(default_factory=dict)
    #: tag -> why it was not synced (a single-platform image of a platform not mirrored)
    tags_refused: Mapping[str, str] = field(default_factory=dict)
    #: index entries left out (platforms not mirrored)
    children_skipped: int = 0
    #: how many tags the upstream listed, before the filter
    tags_listed: int = 0
    manifests_added: int = 0
    blobs_added: int = 0
    bytes_downloaded: int = 0
    foreign_layers: int = 0
    requests: int = 0
    content_added: Mapping[str, int] = field(default_factory=dict)
    content_removed: Mapping[str, int] = field(default_factory=dict)
    #: things the user should know, e.g. a mirror removal held back by an empty upstream
    warnings: tuple[str, ...] = ()
    #: which tag filters decided ("12 upstream tags, 5 selected: semver ^1.2, newest 5")
    selection: str = ""

    @property
    def changed(self) -> bool:
        return self.version is not None

    def to_json(self) -> dict[str, object]:
        out = dataclasses.asdict(self)
        for key in ("tags_added", "tags_moved", "tags_removed", "tags_dropped", "warnings"):
            out[key] = list(out[key])
        out["tags_failed"] = dict(self.tags_failed)
        out["tags_refused"] = dict(self.tags_refused)
        out["content_added"] = dict(self.content_added)
        out["content_removed"] = dict(self.content_removed)
        out["changed"] = self.changed
        return out


def sync(store: Store, source: UpstreamSource, repo_id: str, *, upstream_name: str,
         tag_filter: TagFilter = ALL_TAGS, mirror: bool = False, allow_empty: bool = False, jobs: int = 6,
         pinned: Mapping[str, Digest] | None = None, progress: Progress | None = None,
         platforms: PlatformFilter | None = None) -> SyncResult:
    """Sync ``repo_id`` from ``upstream_name`` on ``source``, committing one new version
    (or none when nothing changed). The caller holds the store lock.

    ``pinned`` (from a saved plan) is the complete selected upstream view ``tag ->
    digest``: exactly these digests are fetched, nothing is re-resolved, and a digest
    the upstream no longer has is an error rather than a skipped tag.

    A mirror whose upstream selects no tag at all removes nothing unless ``allow_empty``:
    an outage, a wrong filter or lost credentials must not wipe a mirror.

    ``platforms``: only those platforms of an index are fetched (the index is kept byte
    for byte, the others recorded as absent), and a tag on a single image of another
    platform is refused (``tags_refused``), never removed by a mirror."""
    before = source.stats.total
    version = store.version_get(repo_id)
    state = RepoState.of(version)
    if pinned is not None:
        upstream = UpstreamView(upstream_name, dict(pinned))
    else:
        upstream = refresh_upstream(source, upstream_name, tag_filter, jobs=jobs, progress=progress,
                                    known=state.tags)
        if platforms is not None:
            refused = refused_tags(store, source, upstream_name, upstream.tags, upstream.manifests, platforms)
            if refused:
                upstream = dataclasses.replace(upstream, refused=refused, tags={
                    t: d for t, d in upstream.tags.items() if t not in refused})
    tags_by_digest: dict[Digest, str] = {}
    for tag, digest in sorted(upstream.tags.items()):
        tags_by_digest.setdefault(digest, tag)
    roots = sorted(set(upstream.tags.values()), key=str)
    fetch = functools.partial(fetch_content, store, source, upstream_name, jobs=jobs, progress=progress,
                              prefetched=upstream.manifests, tags_by_digest=tags_by_digest,
                              skip_missing_roots=pinned is None, platforms=platforms)
    failed_roots: dict[Digest, str] = {}
    try:
        fetched = fetch(roots)
    except ReconcilerError as exc:
        if pinned is not None or isinstance(getattr(exc, "cause", exc), RateLimited):
            raise  # reviewed digests must all arrive; a rate limit would fail every tag again
        if len(roots) == 1:
            fetched, failed_roots = FetchResult(ContentSet()), {roots[0]: failure_text(exc)}
        else:
            # one bad tag must not cost the others: fetch tag by tag (blobs stored before
            # the failure are reused), and fail only the tags that fail again
            log.warning("fetching %d tags of %s at once failed; fetching them one by one", len(roots), upstream_name)
            fetched, failed_roots = _fetch_each(fetch, roots)
    if fetched.missing_roots or failed_roots:
        gone = sorted(t for t, d in upstream.tags.items() if d in fetched.missing_roots)
        failed = {t: failed_roots[d] for t, d in upstream.tags.items() if d in failed_roots}
        upstream = dataclasses.replace(
            upstream, tags={t: d for t, d in upstream.tags.items()
                            if d not in fetched.missing_roots and d not in failed_roots},
            dropped=upstream.dropped + tuple(gone), failed={**upstream.failed, **failed})
    warnings: list[str] = list(fetched.notes)
    warnings += [f"tag {t} not synced: {why}" for t, why in sorted(upstream.refused.items())]
    held_back = False
    if mirror and not upstream.tags and not upstream.unresolved and not allow_empty:
        synced = sorted(n for n, e in state.tags.items() if e.origin == Origin.SYNC and tag_filter.matches(n))
        if synced:
            held_back = True
            warnings.append(f"upstream {upstream_name} selected no tags: mirror removes nothing "
                            f"({len(synced)} synced tags kept); pass --allow-empty if it really is empty")
            log.warning("%s", warnings[-1])
        mirror = False
    if not upstream.listed and pinned is None and not allow_empty and not held_back:
        warnings.append(f"upstream {upstream_name} lists no tags: nothing to sync (a wrong upstream name looks "
                        "exactly like this on registries that answer an unknown name with an empty list)")
        log.info("%s", warnings[-1])  # a warning of the result: the caller shows it
    kept = sorted(n for n in upstream.outranked if n in state.tags and state.tags[n].origin == Origin.SYNC)
    if kept and not mirror:
        warnings.append(f"tag{'' if len(kept) == 1 else 's'} {', '.join(kept)} dropped out of the newest "
                        f"{tag_filter.latest}: kept, because mirror is off")
    graph: RefGraph | None = None
    if mirror:
        # the old content's references as the store recorded them (one query, nothing
        # parsed): the same graph the plan builds with load_graph
        old = [d for d in state.content.manifests | state.content.indexes if d not in fetched.graph]
        graph = fetched.graph.merged(RefGraph.from_refs(store.manifest_refs(old)))
    new_state = sync_state(state, upstream, fetched.closure, tag_filter, mirror=mirror, graph=graph,
                           absent=fetched.skipped)
    added, moved, removed = tag_changes(state, new_state)
    info = store.version_commit(repo_id, base=version.number, content=new_state.content, tags=new_state.tags,
                                operation="sync", absent=new_state.absent)
    if info is None:
        log.info("sync of %s from %s: no changes", repo_id, upstream_name)
    else:
        log.info("sync of %s from %s: version %d", repo_id, upstream_name, info.number)
    return SyncResult(
        repo_id=repo_id, upstream_name=upstream_name, version=info.number if info else None,
        tags_selected=len(upstream.tags), tags_added=added, tags_moved=moved, tags_removed=removed,
        tags_dropped=upstream.dropped, tags_failed=dict(sorted(upstream.failed.items())), tags_listed=upstream.listed,
        manifests_added=fetched.manifests_added, blobs_added=fetched.blobs_added,
        bytes_downloaded=fetched.bytes_downloaded, foreign_layers=len(fetched.foreign_layers),
        requests=source.stats.total - before,
        content_added={k: v for k, v in info.summary.added.items()} if info else {},
        content_removed={k: v for k, v in info.summary.removed.items()} if info else {},
        warnings=tuple(warnings), selection=upstream.selection, tags_refused=dict(upstream.refused),
        children_skipped=len(fetched.skipped),
    )


def _fetch_each(fetch: Callable[[list[Digest]], FetchResult], roots: Sequence[Digest]
                ) -> tuple[FetchResult, dict[Digest, str]]:
    """Fetch each root on its own: (what the ones that worked brought, root -> why it failed)."""
    results: list[FetchResult] = []
    failed: dict[Digest, str] = {}
    for root in roots:
        try:
            results.append(fetch([root]))
        except ReconcilerError as exc:
            log.info("%s", exc.message)  # reported with the result's failed tags
            failed[root] = failure_text(exc)
    return merge_fetches(results), failed
