"""Apply over a real SQLite store with a fake fetcher: one version per repository,
keep-going semantics, journal entries, stale plans refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reconciler.apply.runner import FAILED, SKIPPED, Runner, check_fresh
from reconciler.desired.model import CopySpec
from reconciler.errors import RegistryError, StalePlan
from reconciler.model import Digest
from reconciler.plan.diff import diff
from reconciler.plan.refresh import observe_store
from reconciler.store.protocol import Store
from tests.support.imagegen import store_image
from tests.support.planworld import IMAGES, RepositorySpec, desired, digest, observed, synced


class FakeSource:
    def __init__(self) -> None:
        from reconciler.registry.protocol import RequestStats
        self.stats = RequestStats()

    def close(self) -> None:
        pass


def fetcher(fail: set[Digest]):  # type: ignore[no-untyped-def]
    """Puts an image's content into the store, or fails like an upstream 500."""
    def fetch(store: Store, source: object, name: str, digests: list[Digest], jobs: int) -> None:
        for d in digests:
            if d in fail:
                raise RegistryError("GET", f"http://up/v2/{name}/manifests/{d}", 500)
            for img in IMAGES.values():
                if img.digest == d:
                    store_image(store, img)
    return fetch


def test_failure_skips_dependents_and_finishes_independent_actions(store: Store) -> None:
    spec = desired(synced("src"), synced("other"), RepositorySpec("prod", copies=(CopySpec("src", tags=("v1",)),)))
    plan = diff(spec, observed({}, {"src": {"v1": "a", "v2": "b"}, "other": {"v1": "c"}}))
    plan = dataclasses.replace(plan, store_generation=store.generation())
    result = Runner(plan, store, spec, sources=lambda _: FakeSource(), fetcher=fetcher({digest("a")})).run()  # type: ignore[arg-type, return-value]
    status = {r.id: r.status for r in result.results}
    assert status["src/sync_tag/v1"] == FAILED
    assert status["prod/copy_tag/v1"] == SKIPPED  # it copies what the failed sync would have set
    assert status["prod/create_repository/repository"] == "done"
    assert status["src/sync_tag/v2"] == "done" and status["other/sync_tag/v1"] == "done"
    # one version per changed repository, holding what succeeded
    assert set(store.version_get("src").tags) == {"v2"} and store.version_get("src").number == 1
    assert set(store.version_get("other").tags) == {"v1"}
    assert not result.ok
    entry = store.journal_list()[0]
    assert entry.result == "partial" and entry.plan_digest == plan.digest()


def test_stale_plan_names_what_changed(store: Store, tmp_path: Path) -> None:
    spec = desired(RepositorySpec("r"))
    generation, _, _ = observe_store(store)
    plan = diff(spec, observed({}, generation=generation))
    check_fresh(plan, store, spec, lambda p: "")
    store.repository_create("someone-else")
    with pytest.raises(StalePlan, match=r"generation \d+ -> \d+"):
        check_fresh(plan, store, spec, lambda p: "")
    changed = dataclasses.replace(spec, digest="sha256:" + "e" * 64)
    plan = diff(spec, observed({}, generation=store.generation()))
    with pytest.raises(StalePlan, match="repos.yaml changed"):
        check_fresh(plan, store, changed, lambda p: "")
