"""The pure diff with tag selection and platform subsets: what the plan says and does
when ``latest`` outranks a synced tag (with and without mirror), and when a repository
(or a copy) keeps a platform subset of an index; the state apply commits is the one the
plan predicted, and the JSON round-trips."""

from __future__ import annotations

import dataclasses

from reconciler.desired.model import CopySpec, RepositorySpec
from reconciler.model import Index, PlatformFilter
from reconciler.model.content import Origin
from reconciler.model.tagfilter import TagFilter
from reconciler.ops.state import RepoState
from reconciler.plan.actions import CopyTag, RemoveTag, SyncTag
from reconciler.plan.diff import diff
from reconciler.plan.model import Plan
from reconciler.plan.observed import Observed
from reconciler.plan.render_markdown import render_markdown
from reconciler.plan.render_text import render_text
from reconciler.plan.steps import run_step
from tests.support.imagegen import IndexImage
from tests.support.narrow import narrow
from tests.support.planworld import HUB, IMAGES, desired, observed, repo, state, synced

S = Origin.SYNC
MULTI = narrow(IndexImage, IMAGES["multi"])
AMD, ARM, PPC = (c.digest for c in MULTI.children)


def test_latest_outranks_a_synced_tag_mirror_removes_it_additive_keeps_it_and_says_so() -> None:
    st = state({"1.0": ("a", S), "1.1": ("b", S)})
    upstream = {"1.1": "b", "1.2": "c"}
    for mirror in (True, False):
        spec = synced("web", mirror=mirror, tag_filter=TagFilter(semver="^1", latest=2))
        obs = observed({"web": repo("web", st, feed=HUB.url, upstream="lib/web")}, {"web": upstream})
        obs = dataclasses.replace(obs, upstreams={"web": dataclasses.replace(
            obs.upstreams["web"], listed=3, outranked=("1.0",), selection="3 upstream tags, 2 selected: semver ^1, newest 2")})
        plan = diff(desired(spec), obs)
        summary = plan.repositories[0]
        assert summary.selection == "3 upstream tags, 2 selected: semver ^1, newest 2"
        text = render_text(plan)
        assert "      3 upstream tags, 2 selected: semver ^1, newest 2" in text
        if mirror:
            removal = narrow(RemoveTag, plan.action("web/remove_tag/1.0"))
            assert removal.reason == "dropped out of the newest 2 (mirror)" and removal.cascade
            assert summary.notes == ()
        else:
            assert [a.op.value for a in plan.actions] == ["sync_tag"]
            assert summary.notes == ("tag 1.0 dropped out of the newest 2: kept, because mirror is off",)
            assert "      tag 1.0 dropped out of the newest 2: kept, because mirror is off" in text
        assert Plan.loads(plan.dumps()).repositories == plan.repositories
        markdown = render_markdown(plan)
        assert "- `web`: 3 upstream tags, 2 selected: semver ^1, newest 2" in markdown
        assert mirror or "- `web`: tag 1.0 dropped out of the newest 2: kept, because mirror is off" in markdown


def _platform_world(platforms: list[str], held: RepoState | None = None) -> tuple[RepositorySpec, Observed]:
    obs = observed({"web": repo("web", held, feed=HUB.url, upstream="lib/web")} if held is not None else {},
                   {"web": {"v1": "multi"}})
    assert isinstance(MULTI.manifest, Index)
    obs = dataclasses.replace(obs, indexes={MULTI.digest: MULTI.manifest}, skipped_sizes={PPC: 5000, ARM: 2000})
    spec = synced("web", platforms=PlatformFilter.parse(platforms))
    return spec, obs


def test_a_platform_subset_is_planned_counted_shown_and_committed_as_predicted() -> None:
    spec, obs = _platform_world(["linux/amd64"])
    plan = diff(desired(spec), obs)
    sync = narrow(SyncTag, plan.action("web/sync_tag/v1"))
    assert set(sync.skipped) == {ARM, PPC}
    assert sync.platforms_skipped == ("linux/arm64/v8", "linux/ppc64le") and sync.saved_bytes == 7000
    amd = MULTI.children[0]
    assert sync.adds == {"indexes": 1, "manifests": 1, "blobs": len(amd.blobs)}
    assert sync.download.blobs == len(amd.blobs) and sync.download.manifests == 2
    assert "platforms not mirrored: linux/arm64/v8, linux/ppc64le (6.8 KiB not downloaded)" in render_text(plan)
    again = narrow(SyncTag, Plan.loads(plan.dumps()).action("web/sync_tag/v1"))
    assert again == sync
    # apply runs the same step over the same graph: the state the plan predicted, absent children recorded
    committed = run_step(again, RepoState(), obs.graph).state
    assert committed.content.manifests == {AMD} and committed.absent == {ARM, PPC}


def test_adding_a_platform_plans_the_missing_children_and_nothing_else() -> None:
    spec, obs = _platform_world(["linux/amd64"])
    held = run_step(narrow(SyncTag, diff(desired(spec), obs).action("web/sync_tag/v1")), RepoState(), obs.graph).state
    # the same upstream, planned again: nothing to do
    spec, obs = _platform_world(["linux/amd64"], held)
    assert diff(desired(spec), obs).actions == ()
    spec, obs = _platform_world(["linux/amd64", "linux/arm64"], held)
    plan = diff(desired(spec), obs)
    assert [(a.op.value, a.reason) for a in plan.actions] == [("sync_tag", "platforms added")]
    a = narrow(SyncTag, plan.actions[0])
    assert a.old_digest is None and a.adds == {"manifests": 1, "blobs": len(MULTI.children[1].blobs) - 1}
    assert set(a.skipped) == {PPC}
    after = run_step(a, held, obs.graph).state
    assert after.content.manifests == {AMD, ARM} and after.absent == {PPC}


def test_a_copy_takes_what_its_source_holds_and_its_own_subset_of_that() -> None:
    spec, obs = _platform_world(["linux/amd64", "linux/arm64"])
    plan = diff(desired(spec), obs)
    held = RepoState()
    for a in plan.actions_for("web"):
        if a.op.value == "sync_tag":
            held = run_step(narrow(SyncTag, a), held, obs.graph).state
    obs = dataclasses.replace(observed({"web": repo("web", held, feed=HUB.url, upstream="lib/web")},
                                       {"web": {"v1": "multi"}}),
                              indexes={MULTI.digest: MULTI.manifest})
    whole = synced("whole")
    whole = dataclasses.replace(whole, feed=None, upstream_name=None, copies=(CopySpec("web", tags=("v1",)),))
    arm_only = dataclasses.replace(whole, id="arm", copies=(
        CopySpec("web", tags=("v1",), platforms=PlatformFilter.parse(["linux/arm64/v8"])),))
    plan = diff(desired(spec, whole, arm_only), obs)
    copied = narrow(CopyTag, plan.action("whole/copy_tag/v1"))
    assert set(copied.skipped) == {PPC}  # the source lacks it: never copied, recorded absent
    one = narrow(CopyTag, plan.action("arm/copy_tag/v1"))
    assert set(one.skipped) == {AMD, PPC} and one.platforms_skipped == ("linux/amd64", "linux/ppc64le")
    assert run_step(one, RepoState(), obs.graph).state.content.manifests == {ARM}
