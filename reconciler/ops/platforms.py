"""Platform subsets at the edges of a sync: what a single-platform image is for, and
whether a repository that declares ``platforms`` takes it.

A multi-platform index is split by ``PlatformFilter.split`` during the content walk. A
tag that points straight at one image manifest has no index to split: its platform is
in its config blob (``os``, ``architecture``, ``variant``), or in the body of a schema1
manifest. Such an image of a platform the repository does not mirror is *refused*: the
tag is not synced, and the plan and the sync summary say why, instead of the tag being
dropped in silence. An image whose platform cannot be told (an artifact, a config that
is not an image config) is kept: nothing says it is of another platform.

The upstream is read through the content interface (``ContentSource``: manifests by
digest, blobs with ``read_blob``), as every walk reads it.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor

from reconciler.errors import ReconcilerError
from reconciler.model import Descriptor, Digest, Index, Manifest, Platform
from reconciler.model.content import Kind
from reconciler.model.platforms import PlatformFilter
from reconciler.ops.cascade import RefGraph
from reconciler.ops.transfer.interface import ContentSource
from reconciler.store.protocol import Store

log = logging.getLogger(__name__)

#: an image config larger than this is not read for its platform (real ones are KiBs)
MAX_CONFIG_BYTES = 4 * 1024 * 1024


def _config_platform(raw: bytes) -> Platform | None:
    try:
        doc = json.loads(raw)
    except (UnicodeDecodeError, ValueError):
        return None
    if not isinstance(doc, dict):
        return None
    os_, arch, variant = doc.get("os"), doc.get("architecture"), doc.get("variant")
    if not isinstance(os_, str) or not isinstance(arch, str) or not os_ or not arch:
        return None
    return Platform(os_, arch, variant if isinstance(variant, str) and variant else None)


def image_platform(store: Store, source: ContentSource, manifest: Manifest) -> Platform | None:
    """The platform of a single image (None when it cannot be told): from the store's copy
    of the config blob, else from the upstream (one small GET, nothing stored)."""
    if manifest.architecture:  # schema1 says it in the body (and is always linux)
        return Platform("linux", manifest.architecture)
    config = manifest.config
    if config is None or (config.size or 0) > MAX_CONFIG_BYTES:
        return None
    if store.blob_has(config.digest):
        with store.blob_open(config.digest) as f:
            return _config_platform(f.read(MAX_CONFIG_BYTES))

    def collect(chunks: Iterator[bytes]) -> bytes:
        data = bytearray()
        for chunk in chunks:
            data += chunk
            if len(data) > MAX_CONFIG_BYTES:
                break
        return bytes(data)

    try:
        raw = source.read_blob(config.digest, collect)
    except ReconcilerError as exc:
        log.info("reading the config %s failed (%s): its platform is not known",
                 source.location("blob", config.digest), exc.message)
        return None
    return _config_platform(raw)


def refused_tags(store: Store, source: ContentSource, tags: Mapping[str, Digest],
                 manifests: Mapping[Digest, Manifest | Index], platforms: PlatformFilter) -> dict[str, str]:
    """tag -> why it is not synced, for the tags that point at a single image of a
    platform ``platforms`` does not select. ``manifests``: the parsed roots at hand (the
    others are read from the store or the upstream)."""
    verdicts: dict[Digest, str | None] = {}
    out: dict[str, str] = {}
    for tag, digest in sorted(tags.items()):
        if digest not in verdicts:
            try:
                verdicts[digest] = _verdict(store, source, digest, manifests, platforms)
            except ReconcilerError:
                verdicts[digest] = None  # the fetch fails this tag, with its own error
        if verdicts[digest] is not None:
            out[tag] = str(verdicts[digest])
    return out


def _verdict(store: Store, source: ContentSource, digest: Digest,
             manifests: Mapping[Digest, Manifest | Index], platforms: PlatformFilter) -> str | None:
    m = manifests.get(digest)
    if m is None:
        m = store.manifest_get(digest) if store.manifest_has(digest) else source.manifest(digest)
    if isinstance(m, Index):
        return None
    platform = image_platform(store, source, m)
    if platform is None or platforms.matches(platform):
        return None
    return f"a single-platform image for {platform}, not one of the platforms {platforms}"


def skipped_sizes(store: Store, source: ContentSource, children: Iterable[Digest],
                  jobs: int, fetched: Iterable[Digest] = ()) -> dict[Digest, int]:
    """child -> blob bytes a sync would have downloaded for it (the blobs the store lacks,
    other than ``fetched``, which the selected platforms download anyway): what leaving a
    platform out saves, counted as the plan counts downloads (blob bytes). One GET per
    child, kept in memory only; a child that cannot be read counts 0."""
    wanted = sorted(set(children), key=str)
    if not wanted:
        return {}

    def get(d: Digest) -> Manifest | Index | None:
        try:
            return source.manifest(d)
        except ReconcilerError:
            return None

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(wanted)))) as pool:
        got = dict(zip(wanted, pool.map(get, wanted), strict=True))
    blobs = {b.digest: b.size or 0 for m in got.values() if isinstance(m, Manifest) for b in m.blobs()}
    lacking = store.blobs_missing(blobs) - set(fetched)
    return {d: sum(b.size or 0 for b in m.blobs() if b.digest in lacking) if isinstance(m, Manifest) else 0
            for d, m in got.items()}


def skips_under(graph: RefGraph, roots: Iterable[Digest], indexes: Mapping[Digest, Index],
                platforms: PlatformFilter) -> tuple[frozenset[Digest], tuple[Descriptor, ...]]:
    """The index children ``platforms`` leaves out below ``roots`` (what the fetch walk
    does not follow, so ``graph.closure(roots, skip)`` is what it stores), and their
    index entries (for the plan's words). ``indexes``: the parsed indexes of the graph;
    an index not among them cannot be judged, and all its children are followed."""
    skipped: dict[Digest, Descriptor] = {}
    followed: set[Digest] = set()
    stack, seen = list(roots), set()
    while stack:
        d = stack.pop()
        if d in seen:
            continue
        seen.add(d)
        index = indexes.get(d)
        if index is None:
            stack += [c for c in graph.children(d) if graph.kind(c, parent_kind=graph.kind(d)) is not Kind.BLOB]
            continue
        split = platforms.split(index)
        for e in split.skipped:
            skipped.setdefault(e.digest, e)
        for e in split.followed:
            followed.add(e.digest)
            stack.append(e.digest)
    left = {d: e for d, e in skipped.items() if d not in followed}
    return frozenset(left), tuple(left.values())
