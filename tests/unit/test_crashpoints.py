"""The crash-test store wrapper (``tests/support/crashpoints.py``) sees every store write: a write method
added to the protocol but not to ``WRITE_METHODS`` would never be a kill point, and the
crash test would silently stop covering it (v1_images_put and v1_commit were missed)."""

from __future__ import annotations

from pathlib import Path

from reconciler.apply.observer import Observer, current, install
from reconciler.apply.runner import Runner
from reconciler.plan.diff import diff
from reconciler.store.protocol import Store
from tests.support.crashpoints import WRITE_METHODS, CountingStore
from tests.support.planworld import RepositorySpec, desired, observed

#: protocol methods that are no write event: reads, the lock, maintenance the apply never
#: calls, and the journal (written on the unwrapped store on purpose: it records the kill)
NOT_EVENTS = {"blob_has", "blob_open", "blob_path", "blob_size", "blob_url", "blobs_missing", "check", "close",
              "gc", "generation", "journal_finish", "journal_list", "journal_prune", "journal_start", "lock",
              "manifest_get", "protected_versions", "usage", "version_history",
              "manifest_has", "manifest_raw", "manifest_refs", "manifest_subjects", "publication_get", "publication_list",
              "publication_tag",
              "replaced", "repository_by_publish_name", "repository_find", "repository_get", "repository_list",
              "v1_image_get", "v1_image_publications", "v1_images_get", "v1_version_get", "v1_versions_latest",
              "version_get", "version_holds", "version_left_out", "version_list", "version_referrers", "version_tag",
              "version_tag_names",
              "versions_latest", "pushed",
              "lock_lost", "check_blob_storage", "ping", "bytes_remote", "manifest_meta", "grace_versions",
              "versions_pinned"}


def test_every_store_write_is_an_event() -> None:
    methods = {n for n in dir(Store) if not n.startswith("_") and callable(getattr(Store, n))}  # every role's
    wrapped = {n for n in ("blob_put", "content_batch") if n in vars(CountingStore)}  # counted by their own wrappers
    assert wrapped == {"blob_put", "content_batch"}
    unclassified = methods - WRITE_METHODS - wrapped - NOT_EVENTS
    assert not unclassified, f"decide whether these store methods are write events: {sorted(unclassified)}"
    assert WRITE_METHODS <= methods, f"not store methods: {sorted(WRITE_METHODS - methods)}"


def test_the_shipped_package_has_no_self_kill_path() -> None:
    # the crash points live in tests/support/crashpoints.py and plug into the observer seam;
    # nothing under reconciler/ may read them or kill its own process
    package = Path(__file__).resolve().parents[2] / "reconciler"
    found = [f"{p.relative_to(package)}: {word}" for p in sorted(package.rglob("*.py"))
             for word in ("SIGKILL", "KILL_AT", "WRITE_LOG") if word in p.read_text()]
    assert found == []


class Recording(Observer):
    def __init__(self) -> None:
        self.events: list[tuple[str, str]] = []
        self.wrapped = 0

    def store(self, store: Store) -> Store:
        self.wrapped += 1
        return store

    def event(self, scope: str, what: str) -> None:
        self.events.append((scope, what))


def test_an_apply_reports_its_store_and_its_points_to_the_installed_observer(store: Store) -> None:
    # what the crash points hang on: the store the apply writes through and, per repository,
    # "commit:R" (versions committed, publication not yet) then "repo:R" (done)
    spec = desired(RepositorySpec("a", publish="a"), RepositorySpec("b"))
    plan = diff(spec, observed({}, generation=store.generation()))
    recording = Recording()
    before = current()
    install(recording)
    try:
        assert Runner(plan, store, spec).run().ok
    finally:
        install(before)
    assert recording.wrapped == 1
    assert recording.events == [("apply", "commit:a"), ("apply", "repo:a"), ("apply", "commit:b"), ("apply", "repo:b")]
