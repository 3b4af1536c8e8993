"""Stopping a running apply before its next download or write.

The stop token (``ops.stop.StopToken``, called ``StopFlag`` here) is set by whoever finds
that the apply must not go on: the CLI on SIGINT/SIGTERM, and the store when the apply
lock was lost (its PostgreSQL session ended, so another apply may hold it now).
``StoppingStore`` wraps the apply's store: before every call that starts a download or
writes (``blobs_missing`` comes right before each blob download), it checks the token and
the store's ``lock_lost()``, and raises ``Interrupted`` with the reason instead; a
``LockLost`` the store raises itself sets the token too. The runner checks the token
between actions and repositories, skips what is left, prints its summary and journals
the run ``interrupted``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import Any, BinaryIO, Self

from reconciler.errors import LockLost
from reconciler.model import Digest, Index, Manifest
from reconciler.ops.stop import StopToken
from reconciler.store.protocol import Store
from reconciler.store.roles.content import ContentBatch

#: store calls that start a download (``blobs_missing`` is asked before each one) or write
GUARDED = frozenset({"blobs_missing", "blob_put", "manifest_put", "manifests_put", "version_commit",
                     "repository_create", "repository_update", "repository_delete", "publish", "unpublish",
                     "publications_switch",
                     "v1_images_put", "v1_commit", "record_content", "versions_drop", "push_record"})


#: the apply's stop token (``ops.stop.StopToken``, shared with the downloads it runs)
StopFlag = StopToken


def lock_lost_error(store: Store) -> LockLost:
    return LockLost(f"the apply lock on the store at {store.location} was lost (the connection holding it "
                    "ended, e.g. a database restart): this apply stopped, and another one may hold the lock now",
                    hint="run the apply again: what was committed before the loss is kept, and it converges")


class StoppingStore:
    """A store proxy that checks the stop flag (and the lock) before each guarded call."""

    def __init__(self, store: Store, flag: StopFlag, lock_of: Store) -> None:
        self._store = store
        self._flag = flag
        self._lock_of = lock_of  # the unwrapped store, whose lock this apply holds

    def check(self) -> None:
        if not self._flag.is_set() and self._lock_of.lock_lost():
            self._flag.set(lock_lost_error(self._lock_of))
        self._flag.check()

    def _guarded(self, call: Callable[..., Any]) -> Callable[..., Any]:
        def run(*args: Any, **kwargs: Any) -> Any:
            self.check()
            try:
                return call(*args, **kwargs)
            except LockLost as exc:
                self._flag.set(exc)
                raise

        return run

    def content_batch(self) -> StoppingBatch:
        return StoppingBatch(self._store.content_batch(), self)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._store, name)
        return self._guarded(attr) if name in GUARDED else attr


class StoppingBatch:
    """The batch of a ``StoppingStore``: each put and the commit check first."""

    def __init__(self, batch: ContentBatch, store: StoppingStore) -> None:
        self._batch = batch
        self._store = store

    def blob_put(self, chunks: Iterable[bytes] | BinaryIO, expected: Digest, *,
                 size: int | None = None, where: str = "") -> int:
        self._store.check()
        return self._batch.blob_put(chunks, expected, size=size, where=where)

    def manifests_put(self, manifests: Sequence[Manifest | Index]) -> None:
        self._store.check()
        self._batch.manifests_put(manifests)

    def commit(self, *, before_rows: Callable[[], None] | None = None) -> None:
        self._store.check()
        self._batch.commit(before_rows=before_rows)

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self._batch.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)
