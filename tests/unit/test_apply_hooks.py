"""The crash-test store wrapper (``apply.hooks``) sees every store write: a write method
added to the protocol but not to ``WRITE_METHODS`` would never be a kill point, and the
crash test would silently stop covering it (v1_images_put and v1_commit were missed)."""

from __future__ import annotations

from reconciler.apply.hooks import WRITE_METHODS, CountingStore
from reconciler.store.protocol import Store

#: protocol methods that are no write event: reads, the lock, maintenance the apply never
#: calls, and the journal (written on the unwrapped store on purpose: it records the kill)
NOT_EVENTS = {"blob_has", "blob_open", "blob_path", "blob_size", "blob_url", "blobs_missing", "check", "close",
              "gc", "generation", "journal_finish", "journal_list", "journal_prune", "journal_start", "lock",
              "manifest_get", "protected_versions", "usage", "version_history",
              "manifest_has", "manifest_raw", "manifest_refs", "publication_get", "publication_list",
              "replaced", "repository_by_publish_name", "repository_find", "repository_get", "repository_list",
              "v1_image_get", "v1_image_publications", "v1_images_get", "v1_version_get", "v1_versions_latest",
              "version_get", "version_holds", "version_left_out", "version_list", "version_tag", "version_tag_names",
              "versions_latest",
              "lock_lost", "check_blob_storage", "ping", "bytes_remote", "manifest_meta", "grace_versions",
              "versions_pinned"}


def test_every_store_write_is_an_event() -> None:
    methods = {n for n in vars(Store) if not n.startswith("_") and callable(getattr(Store, n))}
    wrapped = {n for n in ("blob_put", "content_batch") if n in vars(CountingStore)}  # counted by their own wrappers
    assert wrapped == {"blob_put", "content_batch"}
    unclassified = methods - WRITE_METHODS - wrapped - NOT_EVENTS
    assert not unclassified, f"decide whether these store methods are write events: {sorted(unclassified)}"
    assert WRITE_METHODS <= methods, f"not store methods: {sorted(WRITE_METHODS - methods)}"
