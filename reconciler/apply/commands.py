"""The one-off commands that have no repos.yaml line to stand for, each as a small frozen
action type: ``apply.oneoff.run_command`` runs it under the store lock, the one place a
one-off command takes it (``run_one_off`` takes it there too; docs/architecture.md, "One
way in").

- ``Publish`` (``reconciler publish``, with ``--version``), ``Unpublish`` (``--release``)
  and ``Rollback`` (``repo rollback``): repos.yaml's ``publish:`` always serves the newest
  version and hands names over between declared repositories; these point a name at any
  version and never take a name another repository holds;
- ``PruneVersions`` (``repo prune-versions``): ``retain_versions`` drops versions as part
  of an apply's commit; this drops them once, now (or says what it would, ``--dry-run``);
- ``CreateRepository``/``DeleteRepository`` (``repo create``/``repo delete``): an empty
  repository with a feed but no sync, and a deletion repos.yaml makes only with
  ``--prune-repositories``;
- the Docker v1 commands ``copy``/``remove v1-image|v1-tag`` and ``sync --v1``
  (``api.sync_v1_repository``): repos.yaml has no line that says only this (a feed
  always syncs its v2 tags; ``enable_v1`` adds the v1 side to that sync).

Each ``run`` is the operation it always was; only where the lock is taken moved here.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from reconciler.model.repository import Repository
from reconciler.ops import publish as publish_ops
from reconciler.ops.result import OpResult
from reconciler.ops.retention import PruneResult, prune_versions
from reconciler.ops.v1 import content as v1content
from reconciler.store.protocol import Store


@dataclass(frozen=True)
class Publish:
    repo_id: str
    name: str | None = None
    version: int | None = None
    protected: bool | None = None

    def __call__(self, store: Store) -> Repository:
        return publish_ops.publish(store, self.repo_id, name=self.name, version=self.version,
                                   protected=self.protected)


@dataclass(frozen=True)
class Unpublish:
    repo_id: str
    release: bool = False

    def __call__(self, store: Store) -> Repository:
        if self.release:
            return publish_ops.release(store, self.repo_id)
        return publish_ops.unpublish(store, self.repo_id)


@dataclass(frozen=True)
class Rollback:
    repo_id: str
    to: int

    def __call__(self, store: Store) -> Repository:
        return publish_ops.rollback(store, self.repo_id, to=self.to)


@dataclass(frozen=True)
class PruneVersions:
    repo_id: str
    keep: int
    dry_run: bool = False

    def __call__(self, store: Store) -> PruneResult:
        return prune_versions(store, self.repo_id, self.keep, dry_run=self.dry_run)


@dataclass(frozen=True)
class CreateRepository:
    repo_id: str
    feed: str | None = None
    upstream_name: str | None = None

    def __call__(self, store: Store) -> Repository:
        return store.repository_create(self.repo_id, feed=self.feed, upstream_name=self.upstream_name)


@dataclass(frozen=True)
class DeleteRepository:
    repo_id: str

    def __call__(self, store: Store) -> None:
        store.repository_delete(self.repo_id)


@dataclass(frozen=True)
class V1Copy:
    source: str
    target: str
    kind: Literal["image", "tag"]
    names: Sequence[str] | Literal["all"]

    def __call__(self, store: Store) -> OpResult:
        return v1content.copy_v1(store, source=self.source, target=self.target, kind=self.kind, names=self.names)


@dataclass(frozen=True)
class V1Remove:
    repo_id: str
    kind: Literal["image", "tag"]
    names: Sequence[str]

    def __call__(self, store: Store) -> OpResult:
        return v1content.remove_v1(store, self.repo_id, self.kind, self.names)
