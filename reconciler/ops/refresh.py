"""Refresh: what an upstream repository offers right now, as ``tag -> digest``.

One tag list (all pages), the tag filter, then one request per selected tag (bounded
parallelism): a HEAD for a tag the caller already holds (``known``; the common no-change case:
the digest is all we need), a GET for a tag it does not (a new tag's manifest is needed
anyway, and one GET costs half of HEAD + GET: a cold sync of 100 tags made 100 requests
fewer). Only when a registry sends no ``Docker-Content-Digest`` to a HEAD is the manifest
fetched and hashed. Every manifest GOT is kept in the view so the fetch step does not GET
it again. A tag that disappears between the listing and its HEAD was deleted upstream
meanwhile: it is dropped (and logged), not an error.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Mapping
from dataclasses import dataclass, field

from reconciler.errors import NotFound, ReconcilerError, RegistryError, SyncFailed
from reconciler.model import Digest, Index, Manifest
from reconciler.model.tagfilter import TagFilter
from reconciler.ops.parallel import Counter, ItemFailed, Progress, run_bounded
from reconciler.registry.protocol import UpstreamSource

log = logging.getLogger(__name__)

#: the default filter: every tag (TagFilter is immutable, so one shared value is safe)
ALL_TAGS = TagFilter()


@dataclass(frozen=True)
class UpstreamView:
    """The selected upstream tags and their digests, and what it cost to learn them.

    ``manifests`` holds manifests that had to be fetched to learn a digest (registries
    without ``Docker-Content-Digest``); ``dropped`` names tags deleted upstream while we
    looked; ``listed`` is the number of tags the upstream listed before filtering."""

    name: str
    tags: Mapping[str, Digest]
    requests: int = 0
    manifests: Mapping[Digest, Manifest | Index] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    listed: int = 0


def is_not_found(exc: BaseException) -> bool:
    """A 404 from the upstream, whichever way the source reports it."""
    return isinstance(exc, NotFound) or (isinstance(exc, RegistryError) and exc.status == 404)


def refresh_upstream(source: UpstreamSource, upstream_name: str, tag_filter: TagFilter = ALL_TAGS, *,
                     jobs: int = 6, progress: Progress | None = None,
                     known: Container[str] | None = None) -> UpstreamView:
    """List, select and resolve the upstream's tags (see the module docstring). ``known``:
    the names of the tags the caller holds already (HEADed, the others GOT); None: HEAD
    every tag."""
    before = source.stats.total
    try:
        listed = source.tag_list(upstream_name)
    except ReconcilerError as exc:
        raise SyncFailed(f"listing the tags of {upstream_name!r} failed: {exc.message}", cause=exc) from exc
    selected = sorted(set(tag_filter.select(listed)))
    counter = Counter("tags", len(selected), progress)

    def get(tag: str) -> tuple[Digest | None, Manifest | Index | None]:
        try:
            manifest = source.manifest_get(upstream_name, tag)
        except ReconcilerError as exc:
            if not is_not_found(exc):
                raise
            return None, None
        return manifest.digest, manifest

    def resolve(tag: str) -> tuple[Digest | None, Manifest | Index | None]:
        result: tuple[Digest | None, Manifest | Index | None]
        if known is not None and tag not in known:
            result = get(tag)  # a new tag: its manifest is needed anyway
        else:
            head = source.manifest_head(upstream_name, tag)
            if head is None:
                result = (None, None)
            elif head.digest is not None:
                result = (head.digest, None)
            else:
                result = get(tag)  # no Docker-Content-Digest: the digest is the hash of the bytes
        counter.step(tag)
        return result

    try:
        resolved = run_bounded(resolve, selected, jobs=jobs)
    except ItemFailed as failed:
        cause = failed.error
        if not isinstance(cause, ReconcilerError):
            raise cause from None
        raise SyncFailed(f"resolving tag {failed.item!r} of {upstream_name!r} failed: {cause.message}",
                         cause=cause) from cause
    tags: dict[str, Digest] = {}
    manifests: dict[Digest, Manifest | Index] = {}
    dropped: list[str] = []
    for tag, (digest, manifest) in resolved:
        if digest is None:
            log.warning("tag %s of %s was listed but no longer exists upstream; skipped", tag, upstream_name)
            dropped.append(tag)
            continue
        tags[tag] = digest
        if manifest is not None:
            manifests[digest] = manifest
    return UpstreamView(upstream_name, tags, source.stats.total - before, manifests, tuple(dropped), len(listed))
