"""The apply's two ways content enters the store, as seams the runner is given (tests
and one-off commands pass their own): ``Fetcher`` (an upstream's content,
``ops.fetch.fetch_content``) and ``Uploader`` (an upload file, ``ops.upload``); and the
upload action's step (``upload_step``); a v1 import (``V1Uploader``); what a sync action
fetches (``fetched_digests``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Protocol

from reconciler.errors import StalePlan
from reconciler.model import Digest, Index, Manifest, PlatformFilter
from reconciler.model.content import ContentSet
from reconciler.ops.cascade import RefGraph
from reconciler.ops.graph import with_closure
from reconciler.ops.parallel import Progress
from reconciler.ops.result import OpResult
from reconciler.ops.state import RepoState
from reconciler.ops.stop import StopToken
from reconciler.ops.transfer.walk import InFlight
from reconciler.plan.actions import Action, SyncReferrers, SyncTag, Upload
from reconciler.plan.steps import set_tag
from reconciler.registry.protocol import UpstreamSource
from reconciler.store.protocol import Store
from reconciler.store.roles.content import ContentBatch


class Fetcher(Protocol):
    """Fetch the closure of ``digests`` from an upstream into the store
    (``ops.fetch.fetch_content``)."""

    def __call__(self, store: Store, source: UpstreamSource, name: str, digests: list[Digest], jobs: int, *,
                 progress: Progress | None = None, inflight: InFlight | None = None,
                 prefetched: Mapping[Digest, Manifest | Index] | None = None,
                 tags_by_digest: Mapping[Digest, str] | None = None, batch: ContentBatch | None = None,
                 stop: StopToken | None = None, platforms: PlatformFilter | None = None) -> None: ...


class V1Uploader(Protocol):
    """Import a docker save tarball's v1 images into a repository: one new version
    (``ops.v1.upload.upload_v1``)."""

    def __call__(self, store: Store, repo_id: str, path: Path | str, *, mask_id: str | None = None) -> OpResult: ...


#: (store, path, existing content, tag) -> (content, tags)  (ops.upload.upload_content)
Uploader = Callable[[Store, Path, ContentSet, str | None], tuple[ContentSet, Mapping[str, Digest]]]


def default_fetcher(store: Store, source: UpstreamSource, name: str, digests: list[Digest], jobs: int, *,
                    progress: Progress | None = None, inflight: InFlight | None = None,
                    prefetched: Mapping[Digest, Manifest | Index] | None = None,
                    tags_by_digest: Mapping[Digest, str] | None = None, batch: ContentBatch | None = None,
                    stop: StopToken | None = None, platforms: PlatformFilter | None = None) -> None:
    from reconciler.ops.fetch import fetch_content

    fetch_content(store, source, name, digests, jobs=jobs, progress=progress, inflight=inflight,
                  prefetched=prefetched, tags_by_digest=tags_by_digest, batch=batch, stop=stop, platforms=platforms)


def default_uploader(store: Store, path: Path, existing: ContentSet,
                     tag: str | None) -> tuple[ContentSet, Mapping[str, Digest]]:
    from reconciler.ops.upload import upload_content

    result = upload_content(store, path, existing=existing, tag=tag)
    return result.content, result.tags


def upload_step(uploader: Uploader, store: Store, a: Upload, state: RepoState,
                graph: RefGraph) -> tuple[RepoState, RefGraph]:
    """Import the file and set the tags the plan reviewed: every tag the file names, or
    just ``tag`` (``ops.uploadtags``); a file that now sets others makes the plan stale."""
    content, named = uploader(store, Path(a.file), state.content, a.tag)
    wanted = {a.tag: named[a.tag]} if a.tag else dict(named)
    got = {t: str(d) for t, d in sorted(wanted.items())}
    planned = dict(a.upload_tags) or ({a.tag: str(a.digest)} if a.tag and a.digest else got)
    if got != planned:
        raise StalePlan(f"upload {a.file} now sets {got}, the plan said {planned}",
                        hint="plan again and review what the file holds now")
    state = state.with_content(content)
    graph = with_closure(store, graph, list(wanted.values()))
    for tag, digest in wanted.items():
        state = set_tag(state, graph, tag, digest, Upload.origin).state
    return state, graph


def fetched_digests(a: Action) -> list[Digest]:
    """What an action fetches from the upstream: a synced tag's digest, a sync of
    referrers' manifests (exactly the reviewed digests)."""
    if isinstance(a, SyncTag):
        return [a.digest]
    if isinstance(a, SyncReferrers):
        return sorted(set(a.digests) | {Digest.parse(d) for d in a.referrer_tags.values()}, key=str)
    return []
