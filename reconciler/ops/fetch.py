"""Fetch: bring the content behind some digests into the store, downloading only what
the store lacks.

1. Manifests and indexes, level by level (an index's children are the next level):
   those the store already holds are read from it, the rest are fetched by digest in
   parallel and verified. Indexes nested more than ``MAX_INDEX_DEPTH`` deep are refused
   (real ones nest once or twice; digests make a cycle impossible, but a hostile
   upstream can still chain indexes without end).
2. Blobs: every blob those manifests need that the store does not hold in *any*
   repository, fetched in parallel and verified while streaming into a
   ``ContentBatch`` (made durable together, not one fsync after another inside each
   download). Foreign (non-distributable) layers are recorded, never downloaded.
3. The new manifests go into the same batch, which is committed last: blob files, then
   manifest files, then every row in one transaction. A caller may pass its own batch
   (apply: one for all repositories) and commit it itself.

With ``platforms`` (a ``PlatformFilter``), an index's entries of other platforms are not
followed (``PlatformFilter.split``: the one policy every walk uses): the index is stored
as it came, and ``FetchResult.skipped`` names the children left out, which the version
records as absent.

Content stored here is global and invisible: only a repository version that references
it makes it visible, and the caller commits that version after this returns. A failure
raises ``SyncFailed`` naming the tag, digest and URL; what was stored so far stays
harmlessly unreferenced (``store gc`` removes it; the next sync reuses it).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from reconciler.errors import DigestMismatch, ReconcilerError, SyncFailed
from reconciler.model import Descriptor, Digest, Index, Manifest
from reconciler.model.content import ContentSet
from reconciler.model.manifest import MAX_INDEX_DEPTH
from reconciler.model.platforms import PlatformFilter
from reconciler.ops.cascade import RefGraph
from reconciler.ops.parallel import Counter, ItemFailed, Progress, run_bounded
from reconciler.ops.refresh import is_not_found
from reconciler.ops.stop import StopToken, check, guarded
from reconciler.registry.protocol import UpstreamSource
from reconciler.store.protocol import Store
from reconciler.store.roles.content import ContentBatch

log = logging.getLogger(__name__)

AnyManifest = Manifest | Index


@dataclass(frozen=True)
class FetchResult:
    """The content closure of the requested digests and what it took to complete it.

    ``graph`` is the reference graph of every manifest/index of the closure, for cascade
    decisions. ``missing_roots`` are
    requested digests the upstream no longer has (only when ``skip_missing_roots``)."""

    closure: ContentSet
    manifests_added: int = 0
    blobs_added: int = 0
    bytes_downloaded: int = 0
    foreign_layers: frozenset[Digest] = frozenset()
    graph: RefGraph = field(default_factory=lambda: RefGraph({}))
    missing_roots: frozenset[Digest] = frozenset()
    #: what the user should know about the content: index entries of media types that
    #: are not manifests, kept in the index's bytes but not fetched
    notes: tuple[str, ...] = ()
    #: index children not followed: platforms the filter did not select
    skipped: frozenset[Digest] = frozenset()


def merge_fetches(results: Iterable[FetchResult]) -> FetchResult:
    """One ``FetchResult`` for several fetches (of different roots) into one store."""
    out = FetchResult(ContentSet())
    for r in results:
        out = FetchResult(out.closure.union(r.closure), out.manifests_added + r.manifests_added,
                          out.blobs_added + r.blobs_added, out.bytes_downloaded + r.bytes_downloaded,
                          out.foreign_layers | r.foreign_layers, out.graph.merged(r.graph),
                          out.missing_roots | r.missing_roots, tuple(sorted({*out.notes, *r.notes})),
                          out.skipped | r.skipped)
    return out


class InFlight:
    """Blob downloads under way, shared by fetches that run at the same time (apply
    fetches several repositories at once, and repositories share base layers): the
    first fetch that needs a blob downloads it, the others wait for it instead of
    downloading it again. Fetches that share one share one ``ContentBatch`` too (the
    waiter finds the blob there; with batches of their own it would download it again,
    as the other batch is not committed yet). Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._running: dict[Digest, threading.Event] = {}

    def claim(self, digest: Digest) -> threading.Event | None:
        """None: the caller downloads ``digest`` and must ``release`` it. Otherwise the
        event another fetch sets when its download ends (successfully or not)."""
        with self._lock:
            event = self._running.get(digest)
            if event is not None:
                return event
            self._running[digest] = threading.Event()
            return None

    def release(self, digest: Digest) -> None:
        with self._lock:
            event = self._running.pop(digest, None)
        if event is not None:
            event.set()


def source_url(source: UpstreamSource, name: str, path: str) -> str:
    """The URL a request went to, for error messages (sources without a URL get a path)."""
    config = getattr(source, "config", None)
    base = str(getattr(config, "url", "") or "").rstrip("/")
    return f"{base}/v2/{name}/{path}"


def _fail(what: str, cause: BaseException) -> BaseException:
    if not isinstance(cause, ReconcilerError):
        return cause
    return SyncFailed(f"{what}: {cause.message}", cause=cause)


def fetch_content(store: Store, source: UpstreamSource, upstream_name: str, digests: Iterable[Digest], *,
                  jobs: int = 6, progress: Progress | None = None,
                  prefetched: Mapping[Digest, AnyManifest] | None = None,
                  tags_by_digest: Mapping[Digest, str] | None = None,
                  skip_missing_roots: bool = False, inflight: InFlight | None = None,
                  batch: ContentBatch | None = None, stop: StopToken | None = None,
                  platforms: PlatformFilter | None = None) -> FetchResult:
    """See the module docstring. ``prefetched`` are manifests already fetched (by the
    refresh); ``tags_by_digest`` names a tag for each root so errors can say which;
    ``inflight`` is shared with fetches running at the same time (no blob twice);
    ``batch``: put the content there and leave the commit to the caller (without it,
    this call commits a batch of its own before it returns); ``stop``: checked before
    every download and between a blob's chunks (``ops.stop``); ``platforms``: follow only
    those platforms' entries of an index."""
    if batch is None:
        with store.content_batch() as own:
            try:
                result = _fetch(store, source, upstream_name, digests, jobs, progress, prefetched, tags_by_digest,
                                skip_missing_roots, inflight, own, stop, platforms)
            except ReconcilerError:
                own.commit()  # the blobs verified before the failure stay: the next attempt reuses them
                raise
            own.commit()
            return result
    return _fetch(store, source, upstream_name, digests, jobs, progress, prefetched, tags_by_digest,
                  skip_missing_roots, inflight, batch, stop, platforms)


def _fetch(store: Store, source: UpstreamSource, upstream_name: str, digests: Iterable[Digest], jobs: int,
           progress: Progress | None, prefetched: Mapping[Digest, AnyManifest] | None,
           tags_by_digest: Mapping[Digest, str] | None, skip_missing_roots: bool, inflight: InFlight | None,
           batch: ContentBatch, stop: StopToken | None = None,
           platforms: PlatformFilter | None = None) -> FetchResult:
    prefetched = prefetched or {}
    owner: dict[Digest, str] = dict(tags_by_digest or {})
    roots = list(dict.fromkeys(digests))
    known: dict[Digest, AnyManifest] = {}
    new_levels: list[list[AnyManifest]] = []
    missing_roots: set[Digest] = set()
    skipped: set[Digest] = set()
    manifest_bytes = 0

    def label(d: Digest) -> str:
        return f" (tag {owner[d]!r})" if owner.get(d) else ""

    def get(d: Digest) -> AnyManifest | None:
        check(stop)
        try:
            m = source.manifest_get(upstream_name, str(d))
        except ReconcilerError as exc:
            if skip_missing_roots and d in roots and is_not_found(exc):
                return None
            raise
        if m.digest != d:
            raise DigestMismatch(str(d), str(m.digest), where=f"GET {source_url(source, upstream_name, f'manifests/{d}')}")
        counter.step(str(d), len(m.raw))
        return m

    level = roots
    counter = Counter("manifests", 0, None)
    while level:
        to_fetch: list[Digest] = []
        fresh: list[AnyManifest] = []
        for d in level:
            if d in known:
                continue
            if store.manifest_has(d):
                known[d] = store.manifest_get(d)
            elif d in prefetched:
                known[d] = prefetched[d]
                fresh.append(prefetched[d])
            else:
                to_fetch.append(d)
        counter = Counter("manifests", len(to_fetch), progress)
        try:
            results = run_bounded(get, to_fetch, jobs=jobs, stop=stop)
        except ItemFailed as failed:
            d = failed.item  # type: ignore[assignment]
            raise _fail(f"fetching manifest {d}{label(d)} from {upstream_name}", failed.error) from failed.error
        for d, m in results:
            if m is None:
                log.warning("manifest %s%s is gone upstream; skipped", d, label(d))
                missing_roots.add(d)
                continue
            known[d] = m
            fresh.append(m)
        manifest_bytes += sum(len(m.raw) for m in fresh)
        new_levels.append(fresh)
        next_level: list[Digest] = []
        for d in level:
            m = known.get(d)
            if isinstance(m, Index):
                children = m.children()
                if platforms is not None:
                    split = platforms.split(m)
                    skipped |= split.skipped_digests
                    children = tuple(dict.fromkeys(e.digest for e in split.followed))
                for child in children:
                    owner.setdefault(child, owner.get(d, ""))
                    if child not in known:
                        next_level.append(child)
        level = list(dict.fromkeys(next_level))
        if level and len(new_levels) > MAX_INDEX_DEPTH:
            d = level[0]
            raise SyncFailed(f"fetching manifest {d}{label(d)} from {upstream_name}: indexes nested more than "
                             f"{MAX_INDEX_DEPTH} deep at {source_url(source, upstream_name, f'manifests/{d}')}",
                             hint="the upstream's index chain is malformed or hostile; nothing was committed")

    # blobs: everything the image manifests need, downloading only what the store lacks
    needed: dict[Digest, Descriptor] = {}
    foreign: set[Digest] = set()
    for d, m in known.items():
        if isinstance(m, Manifest):
            for desc in m.blobs():
                needed.setdefault(desc.digest, desc)
                owner.setdefault(desc.digest, owner.get(d, ""))
            foreign |= {desc.digest for desc in m.foreign_layers()}
    # (a blob another repository's fetch put into the same batch is not downloaded again)
    missing = sorted((d for d in store.blobs_missing(needed) if not batch.blob_has(d)), key=str)
    blob_counter = Counter("blobs", len(missing), progress)

    def fetch_blob(d: Digest) -> int:
        where = f"GET {source_url(source, upstream_name, f'blobs/{d}')}"

        def sink(chunks: Iterator[bytes]) -> int:
            return batch.blob_put(guarded(chunks, stop), d, size=needed[d].size, where=where)

        check(stop)  # no new download once a stop is requested

        n = source.blob_fetch(upstream_name, d, sink)
        blob_counter.step(str(d), n)
        return n

    def download(d: Digest) -> int | None:
        """Bytes downloaded, None when another fetch downloaded it meanwhile."""
        if inflight is None:
            return fetch_blob(d)
        other = inflight.claim(d)
        if other is None:
            try:
                # another fetch may have downloaded it (into the shared batch, or stored it)
                # and released its claim between our ``missing`` query and this claim (seen
                # under load): do not download it twice
                if batch.blob_has(d) or not store.blobs_missing([d]):
                    blob_counter.step(str(d), 0)
                    return None
                return fetch_blob(d)
            finally:
                inflight.release(d)
        other.wait()  # another fetch is downloading it: wait, then check
        if batch.blob_has(d) or not store.blobs_missing([d]):
            blob_counter.step(str(d), 0)
            return None
        return fetch_blob(d)  # that download failed: try it here

    try:
        downloaded = run_bounded(download, missing, jobs=jobs, stop=stop)
    except ItemFailed as failed:
        d = failed.item  # type: ignore[assignment]
        raise _fail(f"fetching blob {d}{label(d)} from {upstream_name}", failed.error) from failed.error

    # manifests with the blobs, recorded in the batch's one transaction after every file
    batch.manifests_put([m for fresh in reversed(new_levels) for m in fresh])

    closure = ContentSet(
        blobs=frozenset(needed),
        manifests=frozenset(d for d, m in known.items() if isinstance(m, Manifest)),
        indexes=frozenset(d for d, m in known.items() if isinstance(m, Index)),
    )
    return FetchResult(
        closure=closure,
        manifests_added=sum(len(f) for f in new_levels),
        blobs_added=sum(1 for _, n in downloaded if n is not None),
        bytes_downloaded=manifest_bytes + sum(n or 0 for _, n in downloaded),
        foreign_layers=frozenset(foreign),
        graph=RefGraph.from_manifests(known.values()),
        missing_roots=frozenset(missing_roots),
        notes=tuple(skipped_notes((m for fresh in new_levels for m in fresh), tags_by_digest or {})),
        skipped=frozenset(skipped - known.keys()),
    )


def skipped_notes(manifests: Iterable[AnyManifest], tags_by_digest: Mapping[Digest, str]) -> list[str]:
    """A line for each index that lists entries of media types that are not manifests
    (kept in the index's bytes, which are stored and served as they came; not fetched)."""
    notes = []
    for m in manifests:
        if isinstance(m, Index) and m.skipped:
            types = ", ".join(sorted({d.media_type or "(no mediaType)" for d in m.skipped}))
            n = len(m.skipped)
            tag = tags_by_digest.get(m.digest)
            notes.append(f"{f'tag {tag}: ' if tag else ''}index {m.digest} lists {n} entr{'y' if n == 1 else 'ies'} "
                         f"of a media type that is not a manifest ({types}): kept in the index as it came, "
                         "not fetched")
    return sorted(notes)
