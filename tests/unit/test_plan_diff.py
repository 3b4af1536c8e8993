"""The pure diff: (desired, observed) -> Plan, as tables of what a reviewer would see."""

from __future__ import annotations

import re

import pytest

from reconciler.desired.model import ALL, CopySpec, Removal, TagPin
from reconciler.errors import ConfigError, InvalidInput, RemovalRefused
from reconciler.model import Digest
from reconciler.model.content import ContentSet, Origin
from reconciler.model.tagfilter import TagFilter
from reconciler.plan.actions import Change, CopyContent, PinTag, RemoveContent, SyncTag
from reconciler.plan.diff import diff
from reconciler.plan.model import Plan
from tests.support.narrow import narrow
from tests.support.planworld import (
    RepositorySpec,
    content_of,
    desired,
    digest,
    observed,
    repo,
    state,
    synced,
)

S, C, P, U = Origin.SYNC, Origin.COPY, Origin.PIN, Origin.UPLOAD


def lines(plan: Plan) -> list[tuple[str, str, str, str | None, str | None, str | None]]:
    """(repo, symbol+op, tag, old, new, reason) per action: what the text shows."""
    return [(a.repo, f"{a.change.value}{a.op.value}", a.tag or a.kind or a.publish_name or "",
             a.old_digest.short() if a.old_digest else None, a.digest.short() if a.digest else None, a.reason) for a in plan.actions]


def sh(name: str) -> str:
    return digest(name).short()


def test_new_synced_repository_creates_tags_publishes_and_counts_downloads_once() -> None:
    plan = diff(desired(synced("web", publish="team/web")), observed({}, {"web": {"v1": "a", "latest": "a", "v2": "b"}}))
    assert lines(plan) == [
        ("web", "+create_repository", "", None, None, "declared in repos.yaml"),
        ("web", "+sync_tag", "latest", None, sh("a"), "new upstream tag"),
        ("web", "+sync_tag", "v1", None, sh("a"), "new upstream tag"),
        ("web", "+sync_tag", "v2", None, sh("b"), "new upstream tag"),
        ("web", "+publish", "team/web", None, None, "declared in repos.yaml"),
    ]
    latest, v1 = plan.action("web/sync_tag/latest"), plan.action("web/sync_tag/v1")
    # v1 has the same digest as latest: its blobs are counted once, on the first action
    assert latest.download.blobs == len(content_of("a").blobs) and latest.download.bytes > 0
    assert v1.download.blobs == 0
    assert plan.download.blobs == len(content_of("a", "b").blobs)
    assert plan.action("web/publish/team/web").depends_on[0] == "web/create_repository/repository"
    assert set(plan.action("web/publish/team/web").depends_on) >= {"web/sync_tag/v2", "web/sync_tag/latest"}
    assert plan.store_generation == 7 and plan.desired_digest.startswith("sha256:d")


def test_blobs_already_in_the_store_are_not_downloaded_again() -> None:
    obs = observed({"other": repo("other", state({"x": ("a", C)}))}, {"web": {"v1": "a"}})
    plan = diff(desired(synced("web"), RepositorySpec("other", pins=(TagPin("x", digest=digest("a")),))), obs)
    assert plan.action("web/sync_tag/v1").download.blobs == 0


def test_up_to_date_repository_gives_no_changes() -> None:
    st = state({"v1": ("a", S), "latest": ("a", S)})
    obs = observed({"web": repo("web", st, feed="http://127.0.0.1:5000", upstream="lib/web",
                                publish="team/web", published=1)}, {"web": {"v1": "a", "latest": "a"}})
    plan = diff(desired(synced("web", publish="team/web")), obs)
    assert plan.actions == () and not plan.has_changes
    assert [r.status for r in plan.repositories] == ["="]


@pytest.mark.parametrize("mirror,upstream,expect", [
    (False, {"v1": "a", "v2": "c", "v3": "b"}, [
        ("web", "~sync_tag", "v2", sh("b"), sh("c"), "tag moved upstream"),
        ("web", "+sync_tag", "v3", None, sh("b"), "new upstream tag")]),
    (True, {"v2": "b"}, [
        ("web", "-remove_tag", "v1", sh("a"), None, "tag gone upstream (mirror)")]),
    (False, {"v2": "b"}, []),
], ids=["moved-and-added", "mirror-removes-vanished", "additive-keeps-vanished"])
def test_upstream_changes(mirror: bool, upstream: dict[str, str], expect: list[tuple[object, ...]]) -> None:
    st = state({"v1": ("a", S), "v2": ("b", S)})
    obs = observed({"web": repo("web", st, feed="http://127.0.0.1:5000", upstream="lib/web")}, {"web": upstream})
    plan = diff(desired(synced("web", mirror=mirror)), obs)
    assert lines(plan) == expect


def test_mirror_removal_cascades_to_content_only_that_tag_held() -> None:
    st = state({"v1": ("a", S), "v2": ("b", S)})
    obs = observed({"web": repo("web", st, feed="http://127.0.0.1:5000", upstream="lib/web")}, {"web": {"v2": "b"}})
    a = diff(desired(synced("web", mirror=True)), obs).action("web/remove_tag/v1")
    assert a.removes == {"tags": 1, "manifests": 1, "blobs": len(content_of("a").blobs)}
    assert a.destructive


@pytest.mark.parametrize("allow_empty,removed", [(False, 0), (True, 2)], ids=["kept", "allow-empty"])
def test_empty_upstream_never_wipes_a_mirror_unless_allowed(allow_empty: bool, removed: int) -> None:
    st = state({"v1": ("a", S), "v2": ("b", S)})
    obs = observed({"web": repo("web", st, feed="http://127.0.0.1:5000", upstream="lib/web")}, {"web": {}})
    plan = diff(desired(synced("web", mirror=True, allow_empty=allow_empty)), obs)
    assert plan.count(Change.DELETE) == removed
    assert bool(plan.warnings) is (not allow_empty)


def test_tag_filter_limits_what_sync_and_mirror_touch() -> None:
    st = state({"v1": ("a", S), "dev": ("b", S)})
    obs = observed({"web": repo("web", st, feed="http://127.0.0.1:5000", upstream="lib/web")},
                   {"web": {"v1": "a", "v9": "c"}})
    plan = diff(desired(synced("web", mirror=True, tag_filter=TagFilter(include=("v*",)))), obs)
    assert lines(plan) == [("web", "+sync_tag", "v9", None, sh("c"), "new upstream tag")]
    assert plan.unmanaged[0].tags == ("dev",)


def test_copy_and_pin_from_a_repository_synced_in_the_same_plan() -> None:
    st = state({"v1": ("a", S)})
    obs = observed({"src": repo("src", st, feed="http://127.0.0.1:5000", upstream="lib/src")},
                   {"src": {"v1": "b"}})
    prod = RepositorySpec("prod", copies=(CopySpec("src", tags=("v1",)),),
                          pins=(TagPin("stable", source_repo="src", source_tag="v1"),))
    plan = diff(desired(prod, synced("src")), obs)
    assert lines(plan) == [
        ("src", "~sync_tag", "v1", sh("a"), sh("b"), "tag moved upstream"),
        ("prod", "+create_repository", "", None, None, "declared in repos.yaml"),
        ("prod", "+copy_tag", "v1", None, sh("b"), "declared in repos.yaml"),
        ("prod", "+pin_tag", "stable", None, sh("b"), "declared in repos.yaml"),
    ]
    assert "src/sync_tag/v1" in plan.action("prod/copy_tag/v1").depends_on
    assert "src/sync_tag/v1" in plan.action("prod/pin_tag/stable").depends_on
    # the copy brings content that the sync downloads: the copy itself downloads nothing
    assert plan.action("prod/copy_tag/v1").download.empty


def test_copy_all_manifests_and_indexes_without_tags() -> None:
    st = state({"m": ("multi", S), "v1": ("a", S)})
    obs = observed({"src": repo("src", st)})
    dst = RepositorySpec("dst", copies=(CopySpec("src", indexes=ALL),))
    plan = diff(desired(RepositorySpec("src", pins=(TagPin("m", digest=digest("multi")),
                                                    TagPin("v1", digest=digest("a")))), dst), obs)
    copy = narrow(CopyContent, plan.action("dst/copy_content/index-from-src"))
    assert copy.kind == "index" and copy.digests == (digest("multi"),)
    assert copy.adds == {"indexes": 1, "manifests": 3, "blobs": len(content_of("multi").blobs)}


def test_copy_of_a_tag_the_source_will_not_have_is_an_error_of_that_repository_only() -> None:
    obs = observed({"src": repo("src", state({"v1": ("a", P)}))})
    plan = diff(desired(RepositorySpec("src", pins=(TagPin("v1", digest=digest("a")),)),
                        RepositorySpec("dst", copies=(CopySpec("src", tags=("nope",)),)),
                        RepositorySpec("other", pins=(TagPin("x", digest=digest("a")),),
                                       copies=(CopySpec("src", tags=("v1",)),))), obs)
    [error] = plan.errors
    assert (error.repo, error.kind) == ("dst", "semantic")
    assert "copies tag 'nope' from 'src', which will not have it after this plan (it has v1)" in error.message
    assert {r.id: r.status for r in plan.repositories} == {"src": "=", "dst": "!", "other": "+"}
    # the rest of the plan is still made, and nothing of the failed repository is in it
    assert {a.repo for a in plan.actions} == {"other"}


def test_pinned_digest_must_be_in_the_repository() -> None:
    plan = diff(desired(RepositorySpec("r", pins=(TagPin("x", digest=digest("a")),))), observed({}))
    assert [(e.repo, e.kind) for e in plan.errors] == [("r", "semantic")]
    assert "which the repository will not hold" in plan.errors[0].message and plan.actions == ()


@pytest.mark.parametrize("prune,expect_ops,unmanaged", [
    (False, [], ("old",)),
    (True, ["-remove_tag", "-remove_content"], None),
], ids=["prune-off-lists", "prune-on-removes"])
def test_pruning(prune: bool, expect_ops: list[str], unmanaged: tuple[str, ...] | None) -> None:
    st = state({"keep": ("a", P), "old": ("b", Origin.MANUAL)}, extra=("c",))
    obs = observed({"r": repo("r", st)})
    plan = diff(desired(RepositorySpec("r", pins=(TagPin("keep", digest=digest("a")),), prune=prune)), obs)
    assert [f"{a.change.value}{a.op.value}" for a in plan.actions] == expect_ops
    if prune:
        assert plan.action("r/remove_tag/old").reason == "removed from repos.yaml"
        untagged = narrow(RemoveContent, plan.action("r/remove_content/untagged"))
        assert set(untagged.digests) == {digest("b"), digest("c")}
        assert plan.unmanaged == ()
    else:
        assert plan.unmanaged[0].tags == unmanaged and plan.unmanaged[0].untagged_manifests == 1


def test_declared_removals_and_refused_index_child() -> None:
    st = state({"m": ("multi", P), "v1": ("a", P)})
    obs = observed({"r": repo("r", st)})
    spec = RepositorySpec("r", pins=(TagPin("m", digest=digest("multi")),), remove=Removal(tags=("v1",)))
    plan = diff(desired(spec), obs)
    assert lines(plan) == [("r", "-remove_tag", "v1", sh("a"), None, "declared in repos.yaml")]
    child = content_of("multi").manifests - {digest("multi")}
    bad = RepositorySpec("r", remove=Removal(manifests=(sorted(child)[0],)))
    with pytest.raises(RemovalRefused, match="listed by index"):
        diff(desired(bad), obs)


def test_unknown_repositories_are_listed_and_removed_only_when_asked() -> None:
    obs = observed({"gone": repo("gone", state({"v1": ("a", S)}), publish="x/gone", published=1)})
    kept = diff(desired(), obs)
    assert kept.actions == () and kept.unknown_repositories == ("gone",)
    pruned = diff(desired(), obs, prune_repositories=True)
    assert lines(pruned) == [("gone", "-delete_repository", "x/gone", None, None, "removed from repos.yaml")]


def test_copy_cycle_is_named() -> None:
    a = RepositorySpec("a", copies=(CopySpec("b", tags=("x",)),))
    b = RepositorySpec("b", copies=(CopySpec("a", tags=("x",)),))
    with pytest.raises(ConfigError, match="a -> b -> a"):
        diff(desired(a, b), observed({}))


def test_targets_plan_the_target_and_its_sources_only() -> None:
    prod = RepositorySpec("prod", copies=(CopySpec("src", tags=("v1",)),))
    plan = diff(desired(prod, synced("src"), synced("other")), observed({}, {"src": {"v1": "a"}, "other": {"v1": "b"}}),
                targets=["prod"])
    assert {a.repo for a in plan.actions} == {"prod", "src"}
    with pytest.raises(InvalidInput, match="--target nope"):
        diff(desired(prod), observed({}), targets=["nope"])


@pytest.mark.parametrize("published,latest,name,expect", [
    (1, 1, "team/web", []),
    (1, 2, "team/web", [("web", "~publish", "team/web", None, None, "published version 1 is behind the latest 2 (rolled back by hand, or an apply stopped before publishing; this apply publishes the latest)")]),
    (None, 1, "team/web", [("web", "+publish", "team/web", None, None, "declared in repos.yaml")]),
    (1, 1, "old/web", [("web", "~publish", "team/web", None, None, "declared in repos.yaml")]),
], ids=["current", "behind", "unpublished", "renamed"])
def test_publication(published: int | None, latest: int, name: str, expect: list[tuple[object, ...]]) -> None:
    obs = observed({"web": repo("web", state({"v1": ("a", P)}), latest=latest, publish=name, published=published)})
    plan = diff(desired(RepositorySpec("web", pins=(TagPin("v1", digest=digest("a")),), publish="team/web")), obs)
    assert lines(plan) == expect


def test_publish_removed_from_yaml_unpublishes() -> None:
    obs = observed({"web": repo("web", state({"v1": ("a", P)}), publish="team/web", published=1)})
    plan = diff(desired(RepositorySpec("web", pins=(TagPin("v1", digest=digest("a")),))), obs)
    assert lines(plan) == [("web", "-unpublish", "team/web", None, None, "removed from repos.yaml")]


def test_no_refresh_leaves_synced_tags_alone() -> None:
    st = state({"v1": ("a", S)})
    obs = observed({"web": repo("web", st, feed="http://127.0.0.1:5000", upstream="lib/web")}, None)
    plan = diff(desired(synced("web", mirror=True, prune=True)), obs)
    assert plan.actions == ()


def test_order_is_sources_first_whatever_the_names() -> None:
    z = RepositorySpec("a-target", copies=(CopySpec("z-source", tags=("v1",)),))
    plan = diff(desired(z, synced("z-source")), observed({}, {"z-source": {"v1": "a"}}))
    assert [r.id for r in plan.repositories] == ["z-source", "a-target"]


def test_plan_json_round_trips_exactly() -> None:
    prod = RepositorySpec("prod", copies=(CopySpec("src", tags=ALL),), publish="p/prod", protected=True)
    plan = diff(desired(prod, synced("src", mirror=True)), observed({}, {"src": {"v1": "a", "v2": "multi"}}),
                created="2026-01-01T00:00:00+00:00")
    again = Plan.loads(plan.dumps())
    assert again == plan and again.digest() == plan.digest()
    assert plan.to_json()["format_version"] == 2


def test_mirror_moved_tag_drops_old_content_only_when_nothing_else_needs_it() -> None:
    st = state({"v1": ("a", S), "v2": ("b", S), "also": ("b", Origin.MANUAL)})
    obs = observed({"web": repo("web", st, feed="http://127.0.0.1:5000", upstream="lib/web")},
                   {"web": {"v1": "c", "v2": "c"}})
    plan = diff(desired(synced("web", mirror=True, tag_filter=TagFilter(include=("v*",)))), obs)
    v1, v2 = narrow(SyncTag, plan.action("web/sync_tag/v1")), narrow(SyncTag, plan.action("web/sync_tag/v2"))
    assert v1.cascade and v1.removes == {"manifests": 1, "blobs": len(content_of("a").blobs)}
    assert not v2.cascade and v2.removes == {}  # "also" still needs b


@pytest.mark.parametrize("copy", [CopySpec("src", tags=("m",)), CopySpec("src", indexes=ALL)], ids=["tag", "index"])
def test_copy_from_a_source_lacking_a_referenced_item_is_a_plan_error(copy: CopySpec) -> None:
    """As the imperative copy: the source's index lists a manifest the source does not
    hold (a platform subset), so the plan refuses, naming that manifest."""
    from reconciler.ops.state import RepoState
    from tests.support.planworld import IMAGES

    full = state({"m": ("multi", S)})
    child = IMAGES["multi"].children[0].digest
    lacking = RepoState(full.content.difference(content_of_digest(child)), full.tags)
    obs = observed({"src": repo("src", lacking)})
    plan = diff(desired(RepositorySpec("src"), RepositorySpec("dst", copies=(copy,))), obs)
    [error] = plan.errors
    assert error.repo == "dst" and re.search(f"cannot copy from repository 'src'.*manifest {child}", error.message)


def content_of_digest(d: Digest) -> ContentSet:
    return ContentSet(manifests=frozenset([d]))


def test_a_failed_refresh_is_an_error_of_that_repository_only() -> None:
    import dataclasses

    from reconciler.plan.observed import UpstreamTags
    from reconciler.plan.render_text import render_text

    obs = observed({}, {"ok": {"v1": "a"}})
    obs = dataclasses.replace(obs, upstreams={**obs.upstreams, "bad": UpstreamTags("lib/bad", error="GET x: refused")})
    plan = diff(desired(synced("ok"), synced("bad")), obs)
    assert [str(e) for e in plan.errors] == ["bad: refreshing upstream lib/bad failed: GET x: refused"]
    assert [a.id for a in plan.actions if a.repo == "ok"] == ["ok/create_repository/repository", "ok/sync_tag/v1"]
    assert {r.id: r.status for r in plan.repositories} == {"ok": "+", "bad": "!"}
    text = render_text(plan)
    assert "! bad  (hub: lib/bad)  could not be planned: see the error below" in text
    # said once (not in the header, the error list and again), and never "No changes."
    assert text.count("refreshing upstream lib/bad failed") == 1
    assert "Error: bad: refreshing upstream" in text
    assert text.splitlines()[-1] == ("Plan incomplete: 1 repository could not be refreshed. For the rest: "
                                     "3 to add, 0 to change, 0 to remove. "
                                     f"{render_text.__globals__['human_bytes'](plan.download.bytes)} to download.")
    assert Plan.loads(plan.dumps()) == plan  # saved with its errors (apply refuses it)


def test_cascade_counts_leave_out_what_a_later_action_of_the_plan_keeps() -> None:
    # the mirror's tag moves from a to b (its cascade would drop a), but a copy in the same
    # plan brings a right back: a reviewer must not read "removes 1 manifest" for that
    obs = observed({"web": repo("web", state({"latest": ("a", S)}), feed="http://127.0.0.1:5000", upstream="lib/web"),
                    "other": repo("other", state({"x": ("a", P)}))}, {"web": {"latest": "b"}})
    keeps = RepositorySpec("web", feed=synced("web").feed, upstream_name="lib/web", mirror=True,
                           copies=(CopySpec("other", tags=("x",)),))
    plan = diff(desired(RepositorySpec("other", pins=(TagPin("x", digest=digest("a")),)), keeps), obs)
    moved = narrow(SyncTag, plan.action("web/sync_tag/latest"))
    assert moved.cascade and moved.removes == {}  # the apply still cascades; nothing is lost
    drops = diff(desired(synced("web", mirror=True)), obs)
    assert drops.action("web/sync_tag/latest").removes["manifests"] == 1  # without the copy, a goes


def test_target_checks_only_the_targeted_repositories_and_their_sources() -> None:
    obs = observed({"src": repo("src", state({"v1": ("a", P)}))}, {"web": {"v1": "b"}})
    spec = desired(RepositorySpec("src", pins=(TagPin("v1", digest=digest("a")),)),
                   RepositorySpec("broken", copies=(CopySpec("src", tags=("nope",)),)),
                   synced("web"), RepositorySpec("prod", copies=(CopySpec("src", tags=("v1",)),)))
    plan = diff(spec, obs, targets=["prod"])
    # the untargeted repository's mistake does not block the plan of the target
    assert not plan.errors and {a.repo for a in plan.actions} == {"prod"}
    assert {r.id for r in plan.repositories} == {"src", "prod"}
    assert [e.repo for e in diff(spec, obs).errors] == ["broken"]  # without --target it is an error
    # the target's own download counts are not taken by a repository planned before it
    web_only = diff(spec, obs, targets=["web"])
    assert web_only.action("web/sync_tag/v1").download.blobs == len(content_of("b").blobs)


@pytest.mark.parametrize("mirror", [False, True], ids=["additive", "mirror"])
def test_a_filter_that_selects_no_upstream_tag_is_a_warning_everywhere(mirror: bool) -> None:
    import dataclasses

    from reconciler.plan.observed import UpstreamTags
    from reconciler.plan.render_markdown import render_markdown
    from reconciler.plan.render_text import render_text

    st = state({"1.0": ("a", S)})
    obs = observed({"web": repo("web", st, feed="http://127.0.0.1:5000", upstream="lib/web")}, {})
    # the upstream lists 5 tags (it renamed them v1.0, ...), the filter "1.*" selects none
    obs = dataclasses.replace(obs, upstreams={"web": UpstreamTags("lib/web", {}, listed=5)})
    plan = diff(desired(synced("web", mirror=mirror, tag_filter=TagFilter(include=("1.*",)))), obs)
    assert plan.actions == ()  # nothing synced, and a mirror removes nothing
    [warning] = plan.warnings
    assert warning.startswith("web: the tag filter selects none of the 5 tags upstream lib/web lists, so nothing is "
                              "synced (check the filter for a typo)")
    assert ("the mirror removes nothing (1 tag kept) unless allow_empty: true" in warning) is mirror
    assert f"Warning: {warning}" in render_text(plan) and f"- Warning: {warning}" in render_markdown(plan)
    assert plan.to_json()["warnings"] == [warning]


def test_a_tag_that_only_changes_origin_shows_the_change() -> None:
    from reconciler.plan.render_text import render_text

    # latest was synced; repos.yaml now pins it to the same digest: the line must say what changes
    obs = observed({"web": repo("web", state({"latest": ("a", S)}))})
    plan = diff(desired(RepositorySpec("web", pins=(TagPin("latest", digest=digest("a")),))), obs)
    [pin] = plan.actions
    pin = narrow(PinTag, pin)
    assert (pin.change, pin.old_digest, pin.old_origin) == (Change.UPDATE, None, "sync")
    assert f"~ tag latest   {sh('a')}   origin sync -> pin   declared in repos.yaml" in render_text(plan)


def test_a_tag_removed_here_is_not_called_new_upstream() -> None:
    # v1's image is still in the repository, untagged: someone removed the tag here
    st = state({"v2": ("b", S)}, extra=("a",))
    obs = observed({"web": repo("web", st, feed="http://127.0.0.1:5000", upstream="lib/web")},
                   {"web": {"v1": "a", "v2": "b", "v3": "c"}})
    plan = diff(desired(synced("web")), obs)
    assert {a.tag: a.reason for a in plan.actions} == {"v1": "tag missing here, restored from upstream",
                                                        "v3": "new upstream tag"}
