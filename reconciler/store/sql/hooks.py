"""What each SQL store backend provides for its identity binding (``identity.py``), for
backups (``store/backupdir.py``) and for servers that outlive a restore; ``SQLStore``
inherits these defaults and each backend overrides them."""

from __future__ import annotations

from contextlib import AbstractContextManager


class BackendHooks:
    #: the blob storage lives inside the store's own directory (a copy of the directory
    #: carries its own bytes); see ``identity.py``
    blobs_internal: bool = False
    #: this store object passed the identity gate (``identity.py``)
    identity_ok: bool = False

    def home(self) -> str:
        """Where this store's database lives (``sqlite:<dir>``, ``postgresql:<cluster>/<oid>``):
        a copy of the store finds itself somewhere else (``identity.py``)."""
        raise NotImplementedError

    def identity_guard(self) -> AbstractContextManager[None]:
        """Held while the identity binding is checked or changed: one process at a time."""
        raise NotImplementedError

    def backup_hold(self, timeout: float = 60.0) -> AbstractContextManager[None]:
        """Held by a backup from its snapshot to its last copied file (``gc`` waits)."""
        raise NotImplementedError

    def gc_barrier(self, timeout: float = 60.0) -> AbstractContextManager[None]:
        """Held by ``gc``: waits until no backup holds ``backup_hold``."""
        raise NotImplementedError

    def replaced(self) -> bool:
        """Whether the store was replaced under this object (a restore put another
        database file in place); a server then opens it again."""
        return False
