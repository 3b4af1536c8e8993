"""Apply with ``retain_versions`` over a real store (both backends) and a fake upstream:
the plan's drops happen with the new version and after the publish, a failed step keeps
the old versions, and the next plan says no changes."""

from __future__ import annotations

import dataclasses
import time

import pytest

from reconciler.apply.result import FAILED, SKIPPED
from reconciler.apply.runner import Runner
from reconciler.desired.model import DesiredState
from reconciler.model import Digest, Index, Manifest
from reconciler.ops.refresh import UpstreamView
from reconciler.plan.actions import DropVersions, Op
from reconciler.plan.diff import diff
from reconciler.plan.model import Plan
from reconciler.plan.observe import refresh
from reconciler.store.protocol import Store
from reconciler.store.sql.grace import GRACE_ENV, grace_seconds
from tests.support.fakeupstream import NoUpstream
from tests.support.narrow import narrow
from tests.support.planworld import IMAGES, desired, digest, synced
from tests.unit.test_apply_runner import fetcher


class Upstream(NoUpstream):
    """A fake upstream whose ``latest`` points where the test says."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: dict[str, str] = {}

    def manifest_get(self, name: str, reference: str) -> Manifest | Index:
        return next(m for img in IMAGES.values() for m in img.all_manifests() if str(m.digest) == reference)


def plan_now(store: Store, spec: DesiredState, upstream: Upstream) -> Plan:
    def resolver(source: object, rspec: object, jobs: int, known: object) -> UpstreamView:
        return UpstreamView("lib/web", {t: digest(n) for t, n in upstream.tags.items()}, listed=len(upstream.tags))

    observed = refresh(store, spec, lambda _: upstream, resolver=resolver)
    return diff(spec, dataclasses.replace(observed, publish_grace=grace_seconds() > 0))  # as api does


@pytest.fixture
def no_grace(monkeypatch: pytest.MonkeyPatch) -> None:
    """No grace period for versions a publish leaves (RECONCILER_PUBLISH_GRACE=0): they
    can go at once."""
    monkeypatch.setenv(GRACE_ENV, "0")


def apply_now(store: Store, spec: DesiredState, upstream: Upstream, fail: frozenset[Digest] = frozenset()
              ) -> tuple[Plan, dict[str, str]]:
    plan = plan_now(store, spec, upstream)
    result = Runner(plan, store, spec, sources=lambda _: upstream, fetcher=fetcher(set(fail))).run()
    return plan, {r.id: r.status for r in result.results}


def numbers(store: Store, repo: str = "web") -> list[int]:
    return [v.number for v in store.version_list(repo)]


def test_retain_1_keeps_only_the_published_latest_through_moves(store: Store, no_grace: None) -> None:
    spec = desired(synced("web", publish="team/web", mirror=True, prune=True, retain_versions=1))
    up = Upstream()
    for i, image in enumerate(["a", "b", "c", "a"], start=1):
        up.tags = {"latest": image}
        plan, status = apply_now(store, spec, up)
        assert all(s == "done" for s in status.values()), status
        repo = store.repository_get("web")
        # the old latest went with the new version; the version published until the
        # publish switched went right after it
        assert numbers(store) == [repo.latest_version] and repo.published_version == repo.latest_version
        assert store.version_get("web").tags["latest"].digest == digest(image)
        assert store.check().ok
        # the first apply drops the empty version 0 it starts from, each later one the one before
        assert narrow(DropVersions, plan.action("web/drop_versions/versions")).versions == (i - 1,)
        assert {"id": "web/drop_versions/versions", "status": "done"} in narrow(list, store.journal_list()[0].details["actions"])
        assert not plan_now(store, spec, up).has_changes  # converged: the next plan is empty
    # what the dropped versions held alone is now unreferenced: gc gives it back
    assert store.gc().manifests_removed == 2  # b and c; a is held again


def test_retain_2_with_a_publication_moving_each_time(store: Store, no_grace: None) -> None:
    spec = desired(synced("web", publish="team/web", mirror=True, retain_versions=2))
    up = Upstream()
    for image in ["a", "b", "c", "a", "b"]:
        up.tags = {"latest": image}
        apply_now(store, spec, up)
    latest = store.repository_get("web").latest_version
    assert numbers(store) == [latest - 1, latest] and store.repository_get("web").published_version == latest


def test_a_failed_sync_keeps_the_old_versions(store: Store, no_grace: None) -> None:
    spec = desired(synced("web", publish="team/web", mirror=True, retain_versions=1))
    up = Upstream()
    up.tags = {"latest": "a"}
    apply_now(store, spec, up)
    up.tags = {"latest": "b", "other": "c"}
    before = numbers(store)
    plan, status = apply_now(store, spec, up, fail=frozenset({digest("c")}))
    drop = plan.action("web/drop_versions/versions")
    assert status["web/sync_tag/other"] == FAILED and status[drop.id] == SKIPPED
    # the new version (with latest moved) is there; no old version was dropped
    assert numbers(store) == [*before, before[-1] + 1] and store.check().ok
    # the next apply drops them
    up.tags = {"latest": "b"}
    plan, status = apply_now(store, spec, up)
    assert status["web/drop_versions/versions"] == "done" and len(numbers(store)) == 1


def test_a_drop_only_plan_runs_alone(store: Store) -> None:
    up = Upstream()
    up.tags = {"latest": "a"}
    apply_now(store, desired(synced("web", retain_versions=None)), up)
    for image in ["b", "c"]:
        up.tags = {"latest": image}
        apply_now(store, desired(synced("web")), up)
    assert numbers(store) == [0, 1, 2, 3]
    spec = desired(synced("web", retain_versions=2))
    plan = plan_now(store, spec, up)
    assert [a.op for a in plan.actions] == [Op.DROP_VERSIONS] and narrow(DropVersions, plan.actions[0]).versions == (0, 1)
    _, status = apply_now(store, spec, up)
    assert status == {"web/drop_versions/versions": "done"} and numbers(store) == [2, 3]


def test_with_a_grace_period_the_version_a_publish_left_goes_once_it_ended(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GRACE_ENV, "0.5")
    spec = desired(synced("web", publish="team/web", mirror=True, retain_versions=1))
    up = Upstream()
    up.tags = {"latest": "a"}
    apply_now(store, spec, up)
    up.tags = {"latest": "b"}
    _, status = apply_now(store, spec, up)
    assert "web/drop_versions/versions" not in status  # nothing to drop: 1 is left by the publish
    # version 1, which the publish just left, is still served by digest: kept, no change pending
    assert numbers(store) == [1, 2] and store.versions_pinned() == {"web": {1, 2}}
    assert not plan_now(store, spec, up).has_changes
    time.sleep(0.6)
    plan = plan_now(store, spec, up)  # the grace period ended: retention takes it now
    assert [a.op for a in plan.actions] == [Op.DROP_VERSIONS] and narrow(DropVersions, plan.actions[0]).versions == (1,)
    apply_now(store, spec, up)
    assert numbers(store) == [2] and store.check().ok
