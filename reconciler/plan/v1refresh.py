"""Refresh for the v1 side of a plan: each planned repository's v1 content (from the
store), what each v1 upload file would import (``ops.v1.upload.inspect_v1``, with its
sha256 so a saved plan refuses a changed file), and for ``enable_v1`` repositories the
upstream's v1 tags. Like the rest of refresh it writes nothing; a failed upstream is
recorded on its ``V1Upstream`` and the diff reports it as that repository's error.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Iterable
from pathlib import Path

from reconciler.desired.model import DesiredState
from reconciler.errors import ReconcilerError
from reconciler.model.content import V1Content
from reconciler.model.registry import RegistryConfig
from reconciler.ops.v1.sync import V1Source
from reconciler.plan.observed import V1UploadInfo, V1Upstream
from reconciler.store.roles.versions import VersionStore

log = logging.getLogger(__name__)

V1SourceFactory = Callable[[RegistryConfig], V1Source]

_EMPTY = V1Content()


def refresh_v1(store: VersionStore, desired: DesiredState, wanted: Iterable[str], *, stored: Collection[str],
               file_sha256: Callable[[Path], str], sources: V1SourceFactory | None, upstreams: bool) -> tuple[
                   dict[str, V1Content], dict[tuple[str, str], V1UploadInfo], dict[str, V1Upstream]]:
    """``stored``: the repositories the store holds (as ``observe_store`` read them)."""
    v1: dict[str, V1Content] = {}
    # one bulk read, not a read per repository (1,000 repositories were 6,000 statements)
    stored_v1 = store.v1_versions_latest()
    uploads: dict[tuple[str, str], V1UploadInfo] = {}
    remote: dict[str, V1Upstream] = {}
    inspected: dict[tuple[str, str | None], V1UploadInfo] = {}
    for repo_id in sorted(wanted):
        spec = desired.repositories.get(repo_id)
        if spec is None:
            continue
        v1_uploads = [u for u in spec.uploads if u.v1]
        if repo_id in stored:
            content = stored_v1.get(repo_id, _EMPTY)
            if not content.empty or v1_uploads or spec.enable_v1:
                v1[repo_id] = content
        for upload in v1_uploads:
            key = (str(upload.file), upload.mask_id)
            if key not in inspected:
                # imported here: the tar readers cost every plan without v1 uploads start-up time
                from reconciler.ops.v1.upload import inspect_v1

                found = inspect_v1(Path(upload.file), mask_id=upload.mask_id)
                inspected[key] = V1UploadInfo(str(upload.file), file_sha256(Path(upload.file)), found.images,
                                              dict(found.tags), found.notes)
            uploads[(repo_id, str(upload.file))] = inspected[key]
        if spec.enable_v1 and upstreams and spec.feed is not None and spec.upstream_name:
            remote[repo_id] = _upstream(spec.feed, spec.upstream_name, sources)
    return v1, uploads, remote


def _upstream(feed: RegistryConfig, name: str, sources: V1SourceFactory | None) -> V1Upstream:
    if sources is None:
        return V1Upstream(name, error="no v1 client to refresh with")
    try:
        source = sources(feed)
        try:
            return V1Upstream(name, source.tags(name))
        finally:
            source.close()
    except ReconcilerError as exc:
        log.info("refreshing the v1 tags of %s at %s failed: %s", name, feed.url, exc.message)
        return V1Upstream(name, error=exc.message)
