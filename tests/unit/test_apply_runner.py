"""Apply over a real SQLite store with a fake fetcher: one version per repository,
keep-going semantics, journal entries, stale plans refused."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from reconciler.apply.checks import check_fresh
from reconciler.apply.content_in import Fetcher
from reconciler.apply.result import FAILED, SKIPPED
from reconciler.apply.runner import Runner
from reconciler.desired.model import CopySpec
from reconciler.errors import RegistryError, StalePlan
from reconciler.model import Digest
from reconciler.ops.state import RepoState
from reconciler.plan.diff import diff
from reconciler.plan.observe import observe_store
from reconciler.registry.protocol import UpstreamSource
from reconciler.store.protocol import Store
from tests.support.fakeupstream import NoUpstream
from tests.support.imagegen import store_image
from tests.support.planworld import IMAGES, RepositorySpec, desired, digest, observed, repo, synced


class FakeSource(NoUpstream):
    """The upstream of a test whose fetcher is faked too: never read."""


def fetcher(fail: set[Digest]) -> Fetcher:
    """Puts an image's content into the store, or fails like an upstream 500."""
    def fetch(store: Store, source: UpstreamSource, name: str, digests: list[Digest], jobs: int, **_: object) -> None:
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
    result = Runner(plan, store, spec, sources=lambda _: FakeSource(), fetcher=fetcher({digest("a")})).run()
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
    generation, _ = observe_store(store)
    plan = diff(spec, observed({}, generation=generation))
    check_fresh(plan, store, spec, lambda p: "")
    store.repository_create("someone-else")
    with pytest.raises(StalePlan, match=r"generation \d+ -> \d+"):
        check_fresh(plan, store, spec, lambda p: "")
    changed = dataclasses.replace(spec, digest="sha256:" + "e" * 64)
    plan = diff(spec, observed({}, generation=store.generation()))
    with pytest.raises(StalePlan, match="repos.yaml changed"):
        check_fresh(plan, store, changed, lambda p: "")


def test_one_fetch_per_repository_with_every_sync_digest(store: Store) -> None:
    spec = desired(synced("src"), synced("other"))
    plan = diff(spec, observed({}, {"src": {"v1": "a", "v2": "b"}, "other": {"v1": "c"}}))
    plan = dataclasses.replace(plan, store_generation=store.generation())
    calls: list[tuple[str, list[Digest]]] = []
    inner = fetcher(set())

    def fetch(store: Store, source: UpstreamSource, name: str, digests: list[Digest], jobs: int, **kw: object) -> None:
        calls.append((name, sorted(digests, key=str)))
        inner(store, source, name, digests, jobs)

    result = Runner(plan, store, spec, sources=lambda _: FakeSource(), fetcher=fetch).run()
    assert result.ok
    # one batch per repository (not one call per tag), every planned digest in it
    assert sorted(calls) == sorted([("lib/src", sorted([digest("a"), digest("b")], key=str)),
                                    ("lib/other", [digest("c")])])


def test_failed_batch_falls_back_to_tag_by_tag(store: Store) -> None:
    spec = desired(synced("src"))
    plan = diff(spec, observed({}, {"src": {"v1": "a", "v2": "b"}}))
    plan = dataclasses.replace(plan, store_generation=store.generation())
    calls: list[int] = []
    inner = fetcher({digest("a")})

    def fetch(store: Store, source: UpstreamSource, name: str, digests: list[Digest], jobs: int, **kw: object) -> None:
        calls.append(len(digests))
        inner(store, source, name, digests, jobs)

    result = Runner(plan, store, spec, sources=lambda _: FakeSource(), fetcher=fetch).run()
    status = {r.id: r.status for r in result.results}
    assert status == {**status, "src/sync_tag/v1": FAILED, "src/sync_tag/v2": "done"}
    assert calls[0] == 2 and calls[1:] == [1, 1]  # the batch, then one fetch per tag


def test_a_plan_with_errors_is_refused_before_anything_happens(store: Store) -> None:
    from reconciler.errors import PlanIncomplete
    from reconciler.plan.model import PlanError

    spec = desired(synced("src"))
    plan = diff(spec, observed({}, {"src": {"v1": "a"}}))
    plan = dataclasses.replace(plan, store_generation=store.generation(),
                               errors=(PlanError("refresh failed", repo="other"),))
    with pytest.raises(PlanIncomplete, match="refusing a plan with errors: other: refresh failed"):
        Runner(plan, store, spec, sources=lambda _: FakeSource(), fetcher=fetcher(set())).run()
    assert store.repository_list() == [] and store.journal_list() == []


def test_a_stop_requested_during_the_downloads_commits_nothing_and_is_journaled(store: Store) -> None:
    from reconciler.ops.stop import StopToken

    spec = desired(synced("src", publish="team/src"), RepositorySpec("prod", copies=(CopySpec("src", tags=("v1",)),)))
    plan = diff(spec, observed({}, {"src": {"v1": "a", "v2": "b"}}))
    plan = dataclasses.replace(plan, store_generation=store.generation())
    stop = StopToken()
    inner = fetcher(set())

    def fetch(store: Store, source: UpstreamSource, name: str, digests: list[Digest], jobs: int, **kw: object) -> None:
        inner(store, source, name, digests, jobs)
        stop.request("stopped by SIGINT", exit_code=130)  # Ctrl-C while the content arrives

    result = Runner(plan, store, spec, sources=lambda _: FakeSource(), fetcher=fetch, stop=stop).run()
    assert result.stopped == "stopped by SIGINT" and result.exit_code == 130 and not result.ok
    # no new download or write started: no repository, no version, no publication
    assert store.repository_list() == [] and store.publication_list() == []
    entry = store.journal_list()[0]
    assert entry.result == "interrupted" and "stopped: stopped by SIGINT" in str(entry.details["summary"])
    # every action is accounted for: none started, each says so
    assert {r.status for r in result.results} == {"skipped"} and len(result.results) == len(plan.actions)


def test_a_no_change_apply_records_a_short_journal_entry(store: Store) -> None:
    spec = desired(RepositorySpec("r"))
    store.repository_create("r")
    plan = diff(spec, observed({"r": repo("r", RepoState())}, generation=store.generation()))
    assert not plan.has_changes
    result = Runner(plan, store, spec).run()
    assert result.ok
    entry = store.journal_list()[0]
    # short: what drift needs to compare later, and that nothing changed (no action list)
    assert entry.result == "ok" and entry.details["summary"] == "no changes"
    assert not isinstance(entry.details.get("actions"), list)
