"""Publication: a repository's publish name points at one of its versions.

The switch is one store write (``Store.publish`` is a single UPDATE), so a registry
client sees the old version or the new one, never a mix. Callers hold the store lock.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from reconciler.errors import Conflict, NameInvalid
from reconciler.model import validate_repository_name
from reconciler.model.repository import PublicationChange, Repository
from reconciler.store.protocol import Store

log = logging.getLogger(__name__)


def default_publish_name(repo: Repository) -> str:
    """The stored publish name, else the repository id when it is a valid name."""
    if repo.publish_name:
        return repo.publish_name
    try:
        return validate_repository_name(repo.id, what="publish name")
    except NameInvalid as exc:
        raise NameInvalid(
            f"repository id {repo.id!r} is not a valid publish name and the repository has none",
            hint=f"give one: reconciler publish {repo.id} --name team/{repo.id.lower()}",
        ) from exc


def publish(store: Store, repo_id: str, *, name: str | None = None, version: int | None = None,
            protected: bool | None = None) -> Repository:
    """Publish ``version`` (default: latest) of ``repo_id`` under ``name`` (default: the
    stored publish name, else the repository id). ``protected`` None keeps the flag."""
    repo = store.repository_get(repo_id)
    target_name = validate_repository_name(name, what="publish name") if name else default_publish_name(repo)
    target_version = repo.latest_version if version is None else version
    target_protected = repo.protected if protected is None else protected
    result = store.publish(repo_id, name=target_name, version=target_version, protected=target_protected)
    log.info("published %s version %d as %s%s", repo_id, target_version, target_name,
             " (protected)" if target_protected else "")
    return result


def unpublish(store: Store, repo_id: str) -> Repository:
    """Stop serving ``repo_id``; its publish name stays reserved for it (``release`` frees it)."""
    result = store.unpublish(repo_id)
    log.info("unpublished %s", repo_id)
    return result


def release(store: Store, repo_id: str) -> Repository:
    """Stop serving ``repo_id`` and give up its publish name, so another repository can
    take it (``unpublish --release``)."""
    repo = store.repository_get(repo_id)
    store.publications_switch([PublicationChange(repo_id, None)])
    log.info("unpublished %s and released the name %s", repo_id, repo.publish_name)
    return store.repository_get(repo_id)


def switch(store: Store, changes: Sequence[PublicationChange]) -> None:
    """Several publications in one store transaction (a name handed over between
    repositories; see ``Store.publications_switch``)."""
    store.publications_switch(changes)
    for c in changes:
        if c.name is None:
            log.info("%s gave up its publish name", c.repo_id)
        else:
            log.info("published %s version %s as %s", c.repo_id, c.version, c.name)


def rollback(store: Store, repo_id: str, *, to: int) -> Repository:
    """Point the existing publication of ``repo_id`` at version ``to``."""
    repo = store.repository_get(repo_id)
    if repo.published_version is None or not repo.publish_name:
        raise Conflict(f"repository {repo_id!r} is not published, so there is nothing to roll back",
                       hint=f"publish a version: reconciler publish {repo_id} --version {to}")
    return publish(store, repo_id, name=repo.publish_name, version=to, protected=repo.protected)
