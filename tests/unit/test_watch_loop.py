"""The watch loop's own decisions, with fakes for git and the reconcile: backoff on
failures, the last commit kept through a git outage, stop and abandon on signals, and an
abandoned apply journaled ``interrupted``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pytest

from reconciler import api
from reconciler.apply.runner import Runner
from reconciler.desired.loader import load_desired
from reconciler.errors import GitError, RegistryError
from reconciler.model import Digest
from reconciler.model.content import ContentSet
from reconciler.store.protocol import Store
from reconciler.store.sqlite import SQLiteStore
from reconciler.watch.loop import APPLIED, FAILED, NO_CHANGES, PARTIAL, Abandon, Outcome, StopFlag, WatchLoop

DEMO = Path(__file__).resolve().parents[2] / "examples" / "demo.yaml"


class FakeGit:
    """A stand-in for ``GitCheckout`` (the parts the loop reads), passed where one goes."""

    shown_url, ref = "https://git.example/x.git", "main"

    def __init__(self, commits: list[str | Exception]) -> None:
        self.commits, self.root = commits, Path("/checkout")
        self.commit: str | None = None

    def update(self) -> str:
        item = self.commits.pop(0)
        if isinstance(item, Exception):
            raise item
        self.commit = item
        return item


def test_failures_double_the_wait_up_to_the_cap_and_a_good_tick_resets_it() -> None:
    outcomes = [Outcome(errors=("up: 503",)), Outcome(errors=("up: 503",)), Outcome(errors=("up: 503",)),
                Outcome(errors=("up: 503",)), Outcome(), Outcome(actions=2, apply_result="ok")]
    loop = WatchLoop("repos.yaml", lambda p, prov: outcomes.pop(0), interval=10, max_backoff=60,
                     rng=lambda: 0.5, jitter=4)
    reports = [loop.tick() for _ in range(6)]
    assert [r.next_in for r in reports] == [22, 42, 62, 62, 12, 12]
    assert [r.result for r in reports] == [FAILED] * 4 + [NO_CHANGES, APPLIED]
    assert [r.failures for r in reports] == [1, 2, 3, 4, 0, 0]


def test_a_git_outage_keeps_reconciling_the_last_commit() -> None:
    seen: list[tuple[Path, Mapping[str, str]]] = []
    git = FakeGit(["abc123", GitError("git fetch https://git.example/x.git failed: timeout")])

    def reconcile(path: Path, prov: Mapping[str, str]) -> Outcome:
        seen.append((path, dict(prov)))
        return Outcome()

    loop = WatchLoop("deploy/repos.yaml", reconcile, git=git, interval=5)  # type: ignore[arg-type]  # FakeGit stands in for a GitCheckout
    first, second = loop.tick(), loop.tick()
    assert first.result == NO_CHANGES and first.commit == "abc123"
    assert second.result == FAILED and second.commit == "abc123" and "git fetch" in second.errors[0]
    assert seen == [(Path("/checkout/deploy/repos.yaml"), {"git_commit": "abc123", "git_url": git.shown_url,
                                                           "git_ref": "main"})] * 2


def test_no_commit_yet_means_nothing_is_applied() -> None:
    git = FakeGit([GitError("git clone failed")])
    loop = WatchLoop("repos.yaml", lambda p, prov: pytest.fail("reconciled without a checkout"),
                     git=git)  # type: ignore[arg-type]  # FakeGit stands in for a GitCheckout
    assert loop.tick().result == FAILED


def test_results_partial_and_waiting() -> None:
    loop = WatchLoop("f", lambda p, prov: Outcome(actions=1, apply_result="ok", waiting=("a",),
                                                  errors=("a: refreshing upstream failed",)))
    assert loop.tick().result == PARTIAL
    loop = WatchLoop("f", lambda p, prov: Outcome(actions=1, apply_result="partial"))
    assert loop.tick().result == PARTIAL


def test_the_first_stop_ends_the_loop_after_the_tick_and_a_second_abandons_it() -> None:
    stop = StopFlag()
    calls = []

    def reconcile(path: Path, prov: Mapping[str, str]) -> Outcome:
        calls.append(1)
        stop.request()  # SIGTERM during the apply: it finishes
        return Outcome(actions=1, apply_result="ok")

    WatchLoop("f", reconcile, stop=stop, interval=3600).run()  # returns at once: no hour-long wait
    assert calls == [1]

    stop = StopFlag()

    def abandoned(path: Path, prov: Mapping[str, str]) -> Outcome:
        stop.request()
        stop.request()  # the second signal raises Abandon inside the apply
        raise AssertionError("not reached")

    report = WatchLoop("f", abandoned, stop=stop).tick()
    assert report.result == FAILED and report.outcome.apply_result == "interrupted"


def test_an_abandoned_apply_is_journaled_interrupted(tmp_path: Path) -> None:
    store = SQLiteStore(tmp_path / "store")
    try:
        desired = load_desired(DEMO)
        plan = api.make_plan(store, DEMO)

        def uploader(store: Store, path: Path, existing: ContentSet, tag: str | None
                     ) -> tuple[ContentSet, Mapping[str, Digest]]:
            raise Abandon

        with pytest.raises(Abandon):
            Runner(plan, store, desired, uploader=uploader).run()
        entry = store.journal_list(1)[0]
        assert entry.result == "interrupted"
        assert entry.details["desired_digest"] == desired.digest and "desired_repos" in entry.details
        assert store.check().ok
    finally:
        store.close()


def test_a_registry_error_in_the_reconcile_is_a_failed_tick_with_its_message() -> None:
    def reconcile(path: Path, prov: Mapping[str, str]) -> Outcome:
        raise RegistryError("GET", "http://up/v2/", 503)

    report = WatchLoop("f", reconcile).tick()
    assert report.result == FAILED and "HTTP 503" in report.errors[0]
