"""What a sync did (``SyncResult``): the one-off ``reconciler sync`` reports it
(docs/original-system.md, "Sync").

A sync is no operation of its own any more: ``reconciler sync`` is the repos.yaml entry
``{feed, upstream_name, tags, mirror, allow_empty}`` planned and applied like an apply
(``apply.sync_command``, docs/architecture.md "One way in"), so ``sync --mirror`` leaves
exactly what ``mirror: true`` leaves. Tags set by sync get origin ``sync``; additive by
default (as Pulp 2); with ``mirror``, synced tags that vanished upstream (within the tag
filter) go, with the content only they (or the old targets of moved tags) needed. One tag
that cannot be resolved or fetched fails that tag only (``tags_failed``).
"""


from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field


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

