"""Refresh: what an upstream repository offers right now, as ``tag -> digest``.

One tag list (all pages), the tag filter, then one request per selected tag (bounded
parallelism): a HEAD for a tag the caller already holds (``known``; the common no-change case:
the digest is all we need), a GET for a tag it does not (a new tag's manifest is needed
anyway, and one GET costs half of HEAD + GET: a cold sync of 100 tags made 100 requests
fewer). Only when a registry sends no ``Docker-Content-Digest`` to a HEAD is the manifest
fetched and hashed. Every manifest GOT is kept in the view so the fetch step does not GET
it again. A tag that disappears between the listing and its HEAD was deleted upstream
meanwhile: it is dropped (and logged), not an error.

One tag that cannot be resolved (its manifest is malformed, of a type we cannot store,
or keeps failing) fails that tag only: it is recorded in ``failed`` with the reason, and
the other tags are resolved. Dropped and failed tags were still *listed*: a mirror must
not take them for tags gone upstream (``UpstreamView.unresolved``). Only a rate limit
ends the whole refresh (every other tag would hit it too).

The upstream is read through the content interface (``ops.transfer``): the tag list is
``RegistrySource.tags`` and each tag's lookup ``RegistrySource.resolve`` (``read`` for a
new tag), the same adapter whose manifests and blobs the transfer walk then reads.
"""

from __future__ import annotations

import logging
from collections.abc import Container, Mapping
from dataclasses import dataclass, field

from reconciler.errors import RateLimited, ReconcilerError, SyncFailed
from reconciler.model import Digest, Index, Manifest
from reconciler.model.tagfilter import ALL_TAGS, TagFilter
from reconciler.ops.parallel import Counter, ItemFailed, Progress, run_bounded
from reconciler.ops.transfer.adapters import RegistrySource
from reconciler.registry.protocol import UpstreamSource

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class UpstreamView:
    """The selected upstream tags and their digests, and what it cost to learn them.

    ``manifests`` holds manifests that had to be fetched to learn a digest (registries
    without ``Docker-Content-Digest``); ``dropped`` names tags deleted upstream while we
    looked; ``failed`` maps tags that could not be resolved to why; ``listed`` is the
    number of tags the upstream listed before filtering."""

    name: str
    tags: Mapping[str, Digest]
    requests: int = 0
    manifests: Mapping[Digest, Manifest | Index] = field(default_factory=dict)
    dropped: tuple[str, ...] = ()
    listed: int = 0
    failed: Mapping[str, str] = field(default_factory=dict)
    #: tags within the filter that are not among its newest N (``latest``)
    outranked: tuple[str, ...] = ()
    #: which filters decided, e.g. "12 upstream tags, 5 selected: semver ^1.2, newest 5"
    selection: str = ""
    #: tag -> why it is not synced: a single-platform image of a platform not mirrored
    refused: Mapping[str, str] = field(default_factory=dict)
    #: every tag the upstream listed (referrer discovery looks for ``sha256-<hex>`` names)
    names: frozenset[str] = frozenset()

    @property
    def unresolved(self) -> frozenset[str]:
        """Selected tags the tag list names but that have no digest here: never "gone"."""
        return frozenset(self.dropped) | frozenset(self.failed) | frozenset(self.refused)


def failure_text(exc: ReconcilerError) -> str:
    """What a failed tag is reported with: the error, and what to do about it."""
    return f"{exc.message}; {exc.hint}" if exc.hint else exc.message


def refresh_upstream(source: UpstreamSource, upstream_name: str, tag_filter: TagFilter = ALL_TAGS, *,
                     jobs: int = 6, progress: Progress | None = None,
                     known: Container[str] | None = None) -> UpstreamView:
    """List, select and resolve the upstream's tags (see the module docstring). ``known``:
    the names of the tags the caller holds already (HEADed, the others GOT); None: HEAD
    every tag."""
    before = source.stats.total
    content = RegistrySource(source, upstream_name)
    try:
        listed = content.tags()
    except ReconcilerError as exc:
        raise SyncFailed(f"listing the tags of {upstream_name!r} failed: {exc.message}", cause=exc) from exc
    chosen = tag_filter.selection(listed)
    selected = sorted(chosen.selected)
    counter = Counter("tags", len(selected), progress)

    def lookup(tag: str) -> tuple[Digest | None, Manifest | Index | None]:
        # a new tag's manifest is needed anyway: read it now (one GET, not HEAD + GET)
        found = content.resolve(tag, read=known is not None and tag not in known)
        return (found.digest, found.manifest) if found is not None else (None, None)

    def resolve(tag: str) -> tuple[Digest | None, Manifest | Index | None] | ReconcilerError:
        try:
            result: tuple[Digest | None, Manifest | Index | None] | ReconcilerError = lookup(tag)
        except RateLimited:
            raise  # every other tag would hit it too: the refresh fails as a whole
        except ReconcilerError as exc:
            result = exc  # this tag fails; the others go on
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
    failures: dict[str, str] = {}
    for tag, outcome in resolved:
        if isinstance(outcome, ReconcilerError):
            log.info("tag %s of %s failed: %s", tag, upstream_name, outcome.message)  # the caller reports it
            failures[tag] = failure_text(outcome)
            continue
        digest, manifest = outcome
        if digest is None:
            log.warning("tag %s of %s was listed but no longer exists upstream; skipped", tag, upstream_name)
            dropped.append(tag)
            continue
        tags[tag] = digest
        if manifest is not None:
            manifests[digest] = manifest
    return UpstreamView(upstream_name, tags, source.stats.total - before, manifests, tuple(dropped), chosen.listed,
                        failures, tuple(sorted(chosen.outranked)), chosen.summary, names=frozenset(listed))
