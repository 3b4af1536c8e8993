"""The store's versions role: repositories, their immutable versions, retention and
publications, and the lock and generation that serialise their writers.

Writers give the *whole* new state to ``version_commit``; the store works out the
difference, checks the invariants, and creates exactly one new version (or none when
nothing changed). Every write bumps the generation (a saved plan records it, and apply
refuses a plan made against another). Apply, the one-off commands and retention write
through this role; the plan reads it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from reconciler.model.content import ContentSet, TagEntry, V1Content
from reconciler.model.digest import Digest
from reconciler.model.repository import PublicationChange, Repository, RepositoryVersion, VersionHistory, VersionInfo
from reconciler.model.v1image import V1Image


class VersionStore(Protocol):
    """Repositories, versions, retention and publications (their reads for serving: ``ReadView``)."""

    # -- generation and locking ------------------------------------------------------------
    def generation(self) -> int: ...
    def lock(self, timeout: float = 60.0) -> AbstractContextManager[None]: ...
    def lock_lost(self) -> bool:
        """Whether the apply lock held through this store was lost meanwhile (a PostgreSQL
        session that ended); writes are then refused with ``LockLost``."""
        ...

    # -- repositories ----------------------------------------------------------------------
    def repository_list(self) -> list[Repository]: ...
    def repository_find(self, repo_id: str) -> Repository | None: ...
    def repository_by_publish_name(self, name: str) -> Repository | None: ...
    def repository_create(self, repo_id: str, *, feed: str | None = None,
                          upstream_name: str | None = None) -> Repository: ...
    def repository_update(self, repo_id: str, **fields: object) -> Repository: ...
    def repository_delete(self, repo_id: str) -> None: ...

    # -- versions --------------------------------------------------------------------------
    def versions_latest(self) -> dict[str, RepositoryVersion]:
        """The latest version of every repository, read in bulk (what a plan observes)."""
        ...
    def version_commit(self, repo_id: str, *, base: int, content: ContentSet,
                       tags: Mapping[str, TagEntry], operation: str,
                       provenance: Mapping[str, str] | None = None,
                       drop: Iterable[int] = (), absent: Iterable[Digest] = ()) -> VersionInfo | None:
        """Make ``content`` + ``tags`` the next version (None if nothing changed) and, in the same transaction,
        drop the versions ``drop`` (as ``versions_drop``). ``provenance``: where an apply's version came from
        (recorded with it); ``absent``: index children it lacks on purpose (kept while its indexes list them)."""
        ...

    # -- version lifecycle (retention) -----------------------------------------------------
    def protected_versions(self) -> dict[str, dict[int, tuple[str, ...]]]:
        """repository id -> {version: why} of every version that must never be dropped
        (the latest, the published one). The one definition retention and ``store du``
        use; ``versions_drop`` refuses these."""
        ...
    def version_history(self, repo_ids: Iterable[str]) -> dict[str, VersionHistory]:
        """What retention needs about each repository in ``repo_ids`` (unknown ones are
        left out), in one snapshot."""
        ...
    def versions_drop(self, repo_id: str, numbers: Iterable[int]) -> list[int]:
        """Drop these versions in one transaction: their rows go, content they alone
        held becomes unreferenced (``gc`` frees it). Refuses (dropping nothing) a version
        that does not exist or is protected. Returns the numbers dropped."""
        ...

    # -- publication -----------------------------------------------------------------------
    def publish(self, repo_id: str, *, name: str, version: int, protected: bool) -> Repository: ...
    def unpublish(self, repo_id: str) -> Repository: ...
    def publications_switch(self, changes: Sequence[PublicationChange]) -> None:
        """Several publications in ONE transaction, releases before claims (a name moves, or two swap)."""
        ...
    def versions_pinned(self) -> dict[str, set[int]]:
        """Per repository, the versions nothing may drop (retention, pruning): the
        published one and those still in a grace period."""
        ...

    # -- Docker v1 images (docs/original-system.md, "v1 images and tags") ---------------------
    def v1_images_put(self, images: Sequence[V1Image]) -> None:
        """Record v1 images (idempotent); each one's layer blob must be stored already."""
        ...
    def v1_versions_latest(self) -> dict[str, V1Content]:
        """The v1 side of every repository's latest version, read in bulk (what a plan
        observes); repositories without v1 content are left out."""
        ...
    def v1_commit(self, repo_id: str, *, base: int, content: V1Content,
                  operation: str) -> VersionInfo | None:
        """Make ``content`` the v1 side of the next version (the OCI side carries over);
        None if nothing changed. Refuses an image not stored, a parent neither in the
        version nor masked, a tag whose image is not in the version."""
        ...
