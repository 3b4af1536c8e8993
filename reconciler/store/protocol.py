"""The store protocol: what every store backend offers, in OCI words, as the union of
small roles (``reconciler.store.roles``), so each caller can say which part it needs.

| role | module | what | who depends on it |
|---|---|---|---|
| ``ReadView`` | ``roles.read`` | publications, versions, manifests and blobs read back; health | the server (only this), exports, bundles |
| ``ContentStore`` | ``roles.content`` | blobs and manifests in (``ContentBatch``), what is there, recorded references | sync, upload, apply's downloads, the plan's graph |
| ``VersionStore`` | ``roles.versions`` | repositories, versions, retention, publications; the lock and the generation | apply, the one-off commands, the plan |
| ``Journal`` | ``roles.journal`` | what each apply and command did | apply, ``history``, ``drift`` |
| ``Maintenance`` | ``roles.maintenance`` | ``store check``, ``gc``, ``du`` | the CLI |
| ``PushRecords`` | ``roles.pushes`` | which tags we pushed where (push targets) | the plan's prune, apply's pushes |

``Store`` is what a backend implements and what the wiring (``reconciler.api``, the CLI)
hands around. Content is global and deduplicated; a repository is a sequence of
immutable versions (version 0 is empty), each a ``ContentSet`` plus a tag map; every
write bumps the store generation. The values it takes and returns are the model's
(``reconciler.model.content``, ``.repository``, ``.reports``); backends translate their
own exceptions at their boundary.
"""

from __future__ import annotations

from typing import Protocol

from reconciler.store.roles.content import ContentStore
from reconciler.store.roles.journal import Journal
from reconciler.store.roles.maintenance import Maintenance
from reconciler.store.roles.pushes import PushRecords
from reconciler.store.roles.read import ReadView
from reconciler.store.roles.versions import VersionStore

__all__ = ["Store"]


class Store(ReadView, ContentStore, VersionStore, Journal, Maintenance, PushRecords, Protocol):
    """Interface of every store backend (embedded SQLite; PostgreSQL + S3): every role."""
