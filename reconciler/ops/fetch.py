"""Fetch: bring the content behind some digests from an upstream into the store,
downloading only what the store lacks: ``transfer`` (``ops.transfer.walk``) from a
``RegistrySource`` into a ``StoreSink``, and what sync and apply need to know about it.

The walk fetches manifests level by level (one depth bound), then the blobs the store
lacks in *any* repository, verified while streaming into a ``ContentBatch`` (made
durable together, not one fsync after another inside each download); foreign
(non-distributable) layers are recorded, never downloaded. The new manifests go into the
same batch, which is committed last: blob files, then manifest files, then every row in
one transaction. A caller may pass its own batch (apply: one for all repositories) and
commit it itself.

With ``platforms`` (a ``PlatformFilter``, held by the walk's ``TransferPolicy``), an
index's entries of other platforms are not followed: the index is stored as it came, and
``FetchResult.skipped`` names the children left out, which the version records as absent.

Content stored here is global and invisible: only a repository version that references
it makes it visible, and the caller commits that version after this returns. A failure
raises ``SyncFailed`` naming the tag, digest and URL; what was stored so far stays
harmlessly unreferenced (``store gc`` removes it; the next sync reuses it).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from reconciler.errors import ReconcilerError, SyncFailed
from reconciler.model import Digest, Index, Manifest
from reconciler.model.content import ContentSet
from reconciler.model.platforms import PlatformFilter
from reconciler.ops.cascade import RefGraph
from reconciler.ops.parallel import Progress
from reconciler.ops.stop import StopToken
from reconciler.ops.transfer.adapters import RegistrySource, StoreSink
from reconciler.ops.transfer.interface import AnyManifest
from reconciler.ops.transfer.walk import InFlight, TransferFailed, TransferPolicy, transfer
from reconciler.registry.protocol import UpstreamSource
from reconciler.store.protocol import Store
from reconciler.store.roles.content import ContentBatch

log = logging.getLogger(__name__)


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
    policy = TransferPolicy(jobs=jobs, skip_missing_roots=skip_missing_roots, platforms=platforms)
    try:
        moved = transfer(RegistrySource(source, upstream_name), StoreSink(store, batch), digests, policy=policy,
                         progress=progress, stop=stop, inflight=inflight, labels=tags_by_digest,
                         prefetched=prefetched)
    except TransferFailed as failed:
        label = f" (tag {failed.label!r})" if failed.label else ""
        raise _fail(f"fetching {failed.kind} {failed.digest}{label} from {upstream_name}",
                    failed.error) from failed.error
    for d in sorted(moved.missing_roots, key=str):
        label = f" (tag {tags_by_digest[d]!r})" if tags_by_digest and tags_by_digest.get(d) else ""
        log.warning("manifest %s%s is gone upstream; skipped", d, label)
    known = moved.manifests
    closure = ContentSet(
        blobs=frozenset(moved.blobs),
        manifests=frozenset(d for d, m in known.items() if isinstance(m, Manifest)),
        indexes=frozenset(d for d, m in known.items() if isinstance(m, Index)),
    )
    return FetchResult(
        closure=closure,
        manifests_added=len(moved.fetched),
        blobs_added=moved.blobs_put,
        bytes_downloaded=moved.manifest_bytes + moved.blob_bytes,
        foreign_layers=frozenset(moved.foreign),
        graph=RefGraph.from_manifests(known.values()),
        missing_roots=frozenset(moved.missing_roots),
        notes=tuple(skipped_notes(moved.fetched, tags_by_digest or {})),
        skipped=frozenset(moved.skipped),
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
