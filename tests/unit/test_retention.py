"""The retention rule (``ops.retention``) and the plan's retention step, as tables: which
versions go, which never do, and what dropping them gives back once gc runs."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection
from typing import TypedDict

import pytest

from reconciler.errors import InvalidInput
from reconciler.model import Digest
from reconciler.model.content import Origin
from reconciler.model.repository import VersionHistory, version_ranges
from reconciler.ops.retention import GRACE, LATEST, PUBLISHED, choose, freed_bytes
from reconciler.plan.actions import Change, DropVersions, Op
from reconciler.plan.diff import diff
from reconciler.plan.model import Plan
from reconciler.plan.render_markdown import render_markdown
from reconciler.plan.render_text import render_text
from tests.support.narrow import narrow
from tests.support.planworld import desired, digest, observed, repo, state, synced

S = Origin.SYNC


def history(numbers: range | list[int], *, latest: int | None = None, published: int | None = None,
            rows: tuple[tuple[Digest, int, int | None], ...] = (), sizes: dict[Digest, int] | None = None,
            shared: frozenset[Digest] = frozenset()) -> VersionHistory:
    nums = tuple(numbers)
    protected: dict[int, tuple[str, ...]] = {}
    for n, why in ((latest if latest is not None else nums[-1], LATEST), (published, PUBLISHED)):
        if n is not None:
            protected[n] = tuple(sorted({*protected.get(n, ()), why}))
    return VersionHistory("web", nums, protected, rows, sizes or {}, shared)


@pytest.mark.parametrize(("numbers", "keep", "new", "published", "released", "dropped"), [
    (range(0, 10), 3, 0, None, (), (0, 1, 2, 3, 4, 5, 6)),
    (range(0, 10), 3, 1, None, (LATEST,), (0, 1, 2, 3, 4, 5, 6, 7)),
    (range(0, 10), 1, 1, None, (LATEST,), tuple(range(0, 10))),         # the new version replaces them all
    (range(0, 10), 1, 0, None, (), tuple(range(0, 9))),                 # the latest always stays
    (range(0, 10), 2, 0, 3, (), (0, 1, 2, 4, 5, 6, 7)),                 # the published version stays
    (range(0, 10), 2, 1, 3, (LATEST, PUBLISHED), (0, 1, 2, 3, 4, 5, 6, 7, 8)),  # the publish moves off 3
    (range(0, 10), 20, 0, None, (), ()),
    (range(0, 3), 2, 3, None, (LATEST,), (0, 1, 2)),                     # more new versions than kept
    ([4, 8, 9], 2, 0, None, (), (4,)),                                   # gaps from earlier drops
], ids=["keep-3", "keep-3-counting-the-new", "keep-1-with-new", "keep-1", "published-kept",
        "publish-moves", "fewer-than-keep", "v1-versions", "gaps"])
def test_choose(numbers: range | list[int], keep: int, new: int, published: int | None,
                released: tuple[str, ...], dropped: tuple[int, ...]) -> None:
    h = history(numbers, published=published)
    assert choose(h, keep, new_versions=new, released=released) == dropped


def test_keep_must_be_at_least_one() -> None:
    with pytest.raises(InvalidInput, match="at least 1"):
        choose(history(range(3)), 0)


def test_version_ranges() -> None:
    assert version_ranges([7, 3, 4, 5, 9, 10]) == "3-5, 7, 9-10"
    assert version_ranges([2]) == "2" and version_ranges([]) == ""


A, B, C, D = (Digest.of(x) for x in (b"a", b"b", b"c", b"d"))
SIZES = {A: 100, B: 20, C: 3, D: 4000}


class FreedArgs(TypedDict, total=False):
    new_version: bool
    removing: Collection[Digest]
    adding: Collection[Digest]


@pytest.mark.parametrize(("rows", "dropped", "kw", "freed"), [
    # A held by 1-2 only, B by 1-4 (into the kept 3), C from 3 on, D only by 2
    (((A, 1, 3), (B, 1, 5), (C, 3, None), (D, 2, 3)), [1, 2], {}, 100 + 4000),
    (((A, 1, 3), (B, 1, 5), (C, 3, None), (D, 2, 3)), [1], {}, 0),     # A and D are still in 2
    # a new version (no earlier one kept) that drops C and re-adds A
    (((A, 1, 3), (C, 3, None)), [1, 2, 3, 4], {"new_version": True, "removing": {C}, "adding": {A}}, 3),
    # the new version carries C over: only the removed history goes
    (((A, 1, 3), (C, 3, None)), [1, 2, 3, 4], {"new_version": True}, 100),
], ids=["old-only-content", "still-held", "new-version-removes-and-readds", "new-version-carries-over"])
def test_freed_bytes(rows: tuple[tuple[Digest, int, int | None], ...], dropped: list[int],
                     kw: FreedArgs, freed: int) -> None:
    h = history(range(1, 5), rows=rows, sizes=SIZES)
    assert freed_bytes(h, dropped, **kw) == freed


def test_content_another_repository_holds_is_never_counted() -> None:
    h = history(range(1, 5), rows=((A, 1, 2), (D, 1, 2)), sizes=SIZES, shared=frozenset({D}))
    assert freed_bytes(h, [1]) == 100


# -- the plan's retention step ------------------------------------------------------------


def plan_for(keep: int, *, upstream: dict[str, str], numbers: list[int], published: int | None,
             tags: dict[str, str], publish: bool = True, grace: bool = True,
             in_grace: tuple[int, ...] = ()) -> Plan:
    latest = numbers[-1]
    st = state({t: (img, S) for t, img in tags.items()})
    obs = observed({"web": repo("web", st, latest=latest, feed="http://127.0.0.1:5000", upstream="lib/web",
                                publish="team/web" if published is not None else None, published=published)},
                   {"web": upstream})
    rows = tuple((d, numbers[0], None) for d, _ in st.content.items())
    hist = history(numbers, published=published, rows=rows, sizes=dict.fromkeys(st.content.blobs, 10))
    hist = dataclasses.replace(hist, protected={**hist.protected, **{n: (GRACE,) for n in in_grace}})
    obs = dataclasses.replace(obs, history={"web": hist}, publish_grace=grace)
    spec = synced("web", publish="team/web" if publish else None, retain_versions=keep, mirror=True, prune=True)
    return diff(desired(spec), obs)


def test_plan_drops_old_versions_counting_the_new_one_and_the_moving_publication() -> None:
    plan = plan_for(2, upstream={"latest": "b"}, numbers=[1, 2, 3, 4, 5], published=5, tags={"latest": "a"})
    drop = narrow(DropVersions, plan.action("web/drop_versions/versions"))
    # v6 comes and stays with v5; the publish moves from 5 to 6, so 5 is no longer pinned
    assert drop.versions == (1, 2, 3, 4) and drop.change is Change.DELETE
    assert drop.reason == "retain_versions: 2"
    # it runs after the content and the publish: a failure of either keeps the versions
    assert {"web/sync_tag/latest", "web/publish/team/web"} <= set(drop.depends_on)
    assert drop.frees_bytes == 0  # the old image stays in the kept version 5
    text = render_text(plan)
    assert "      - drop versions 1-4 (frees ~0 B once gc runs)   retain_versions: 2\n" in text
    assert "Plan: 0 to add, 2 to change, 1 to remove." in text
    assert "drop versions 1-4" in render_markdown(plan)


def test_plan_with_keep_1_and_no_grace_period_drops_the_old_latest_and_counts_what_it_held() -> None:
    plan = plan_for(1, upstream={"latest": "b"}, numbers=[3, 4], published=4, tags={"latest": "a"}, grace=False)
    drop = narrow(DropVersions, plan.action("web/drop_versions/versions"))
    assert drop.versions == (3, 4)
    # the old image's blobs are held by no kept version and not by the new one
    assert drop.frees_bytes == 10 * len(state({"latest": ("a", S)}).content.blobs)


def test_the_version_a_publish_leaves_stays_for_its_grace_period() -> None:
    # the publish moves off 4, which is then served by digest for the grace period: kept now
    plan = plan_for(1, upstream={"latest": "b"}, numbers=[3, 4], published=4, tags={"latest": "a"})
    drop = narrow(DropVersions, plan.action("web/drop_versions/versions"))
    assert drop.versions == (3,) and drop.frees_bytes == 0
    # a version still in a grace period is never chosen; once it ended, it goes
    plan = plan_for(1, upstream={"latest": "a"}, numbers=[3, 4, 5], published=5, tags={"latest": "a"},
                    in_grace=(4,))
    assert narrow(DropVersions, plan.action("web/drop_versions/versions")).versions == (3,)
    plan = plan_for(1, upstream={"latest": "a"}, numbers=[4, 5], published=5, tags={"latest": "a"}, in_grace=(4,))
    assert not plan.has_changes


def test_saved_plan_keeps_the_exact_versions() -> None:
    plan = plan_for(1, upstream={"latest": "b"}, numbers=[3, 4], published=4, tags={"latest": "a"}, grace=False)
    again = Plan.loads(plan.dumps())
    assert narrow(DropVersions, again.action("web/drop_versions/versions")).versions == (3, 4)
    assert again.digest() == plan.digest()
    assert plan.to_json()["actions"][-1]["op"] == "drop_versions"


def test_nothing_to_drop_means_no_action_and_no_changes() -> None:
    plan = plan_for(2, upstream={"latest": "a"}, numbers=[4, 5], published=5, tags={"latest": "a"})
    assert not plan.has_changes
    # no new version and 3 versions over 2: the unpublished oldest one goes, alone
    plan = plan_for(2, upstream={"latest": "a"}, numbers=[3, 4, 5], published=5, tags={"latest": "a"})
    assert [a.op for a in plan.actions] == [Op.DROP_VERSIONS]
    assert narrow(DropVersions, plan.actions[0]).versions == (3,) and plan.actions[0].depends_on == ()


def test_an_unpublish_releases_the_published_version_after_it_runs() -> None:
    # published at 2 (a rollback); repos.yaml no longer publishes: the unpublish frees 2
    plan = plan_for(1, upstream={"latest": "a"}, numbers=[1, 2, 3, 4], published=2, tags={"latest": "a"},
                    publish=False)
    drop = narrow(DropVersions, plan.action("web/drop_versions/versions"))
    assert drop.versions == (1, 2, 3)
    assert "web/unpublish/team/web" in drop.depends_on


def test_unset_retain_versions_keeps_everything() -> None:
    st = state({"latest": ("a", S)})
    obs = observed({"web": repo("web", st, latest=5)}, {"web": {"latest": "b"}})
    obs = dataclasses.replace(obs, history={"web": history(range(1, 6))})
    plan = diff(desired(synced("web")), obs)
    assert Op.DROP_VERSIONS not in {a.op for a in plan.actions}
    assert digest("b") in {a.digest for a in plan.actions}
