"""One bad upstream tag fails that tag, not its repository or the plan (pure diff,
renderers, and apply over a real store): the plan records it with its reason, a mirror
never removes a tag the tag list still names, what copies or pins the failed tag fails
with it, apply applies the rest and reports the tag (journal ``partial``, not ok).
Also the empty tag list of a new repository: warned about, not created unless allowed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import TypedDict, Unpack

import pytest

from reconciler.apply.result import FAILED
from reconciler.apply.runner import Runner
from reconciler.desired.model import CopySpec, TagPin
from reconciler.model import Digest
from reconciler.model.content import Origin
from reconciler.plan.actions import Change
from reconciler.plan.diff import diff
from reconciler.plan.model import FailedTag, Plan
from reconciler.plan.observed import Observed, UpstreamTags
from reconciler.plan.render_markdown import render_markdown
from reconciler.plan.render_text import render_text
from reconciler.store.protocol import Store
from tests.support.fakeupstream import NoUpstream
from tests.support.imagegen import store_image
from tests.support.planworld import IMAGES, RepositorySpec, desired, observed, repo, state, synced

S = Origin.SYNC
WHY = "GET http://up/v2/lib/web/manifests/v2: manifest: descriptor sha256:ab lacks 'size'"


class UpstreamFields(TypedDict, total=False):
    failed: Mapping[str, str]
    dropped: tuple[str, ...]
    listed: int


def with_upstream(obs: Observed, repo_id: str, **kw: Unpack[UpstreamFields]) -> Observed:
    ups = dict(obs.upstreams)
    ups[repo_id] = dataclasses.replace(ups[repo_id], **kw)
    return dataclasses.replace(obs, upstreams=ups)


def test_a_failed_tag_fails_alone_and_a_mirror_never_removes_a_listed_tag() -> None:
    st = state({"v1": ("a", S), "v2": ("b", S), "v3": ("c", S), "v5": ("c", S)})
    obs = observed({"web": repo("web", st, feed="http://127.0.0.1:5000", upstream="lib/web")},
                   {"web": {"v1": "a", "v4": "b"}})
    # v2 failed, v5 was listed but deleted while refresh looked, v3 is no longer listed
    obs = with_upstream(obs, "web", failed={"v2": WHY}, dropped=("v5",), listed=4)
    plan = diff(desired(synced("web", mirror=True)), obs)
    assert plan.failed_tags == (FailedTag("web", "v2", WHY),)
    assert [(a.change.value, a.tag) for a in plan.actions] == [("+", "v4"), ("-", "v3")]
    assert plan.errors == ()  # nothing makes apply refuse the plan


def test_a_tag_copied_or_pinned_from_a_failed_tag_fails_with_it() -> None:
    obs = observed({}, {"src": {"v2": "b"}})
    obs = with_upstream(obs, "src", failed={"v1": WHY}, listed=2)
    prod = RepositorySpec("prod", copies=(CopySpec("src", tags=("v1", "v2")),),
                          pins=(TagPin("stable", source_repo="src", source_tag="v1"),))
    plan = diff(desired(synced("src"), prod), obs)  # before: ContentNotFound, no plan at all
    assert [(f.repo, f.tag) for f in plan.failed_tags] == [("src", "v1"), ("prod", "v1"), ("prod", "stable")]
    assert plan.failed_tags[1].error == f"copy from src: tag v1 failed there: {WHY}"
    assert {(a.repo, a.tag) for a in plan.actions if a.tag} == {("src", "v2"), ("prod", "v2")}


def _plan_with_a_failed_tag() -> Plan:
    obs = observed({}, {"web": {"v1": "a"}})
    return diff(desired(synced("web")), with_upstream(obs, "web", failed={"v2": WHY}, listed=2))


def test_the_renderers_show_the_failed_tag_and_never_say_no_changes() -> None:
    plan = _plan_with_a_failed_tag()
    text = render_text(plan)
    assert f"      ! tag v2   FAILED: {WHY}" in text
    assert text.splitlines()[-1].startswith("Plan: 2 to add, 0 to change, 0 to remove.")
    assert text.splitlines()[-1].endswith(" 1 tag failed.")
    only_failure = dataclasses.replace(plan, actions=())
    assert "No changes." not in render_text(only_failure)
    assert render_text(only_failure).splitlines()[-1] == "Plan: 0 to add, 0 to change, 0 to remove. 1 tag failed."
    assert f"> - `web` tag `v2`: {WHY}" in render_markdown(plan)
    again = Plan.loads(plan.dumps())  # a saved plan keeps them, and JSON without them stays as it was
    assert again.failed_tags == plan.failed_tags and again.digest() == plan.digest()
    assert "failed_tags" not in dataclasses.replace(plan, failed_tags=()).to_json()


def test_apply_applies_the_rest_and_reports_the_tag(store: Store) -> None:
    spec = desired(synced("web"))
    plan = dataclasses.replace(_plan_with_a_failed_tag(), store_generation=store.generation())

    def fetch(store: Store, source: object, name: str, digests: list[Digest], jobs: int, **_: object) -> None:
        store_image(store, IMAGES["a"])

    result = Runner(plan, store, spec, sources=lambda _: NoUpstream(), fetcher=fetch).run()
    status = {r.id: (r.status, r.error) for r in result.results}
    assert status["web/sync_tag/v2"] == (FAILED, WHY)
    assert status["web/sync_tag/v1"] == ("done", None)
    assert not result.ok and set(store.version_get("web").tags) == {"v1"}
    assert store.journal_list()[0].result == "partial"


def test_a_new_repository_whose_upstream_lists_no_tags_is_not_created_unless_allowed() -> None:
    obs = observed({}, {"web": {}})
    plan = diff(desired(synced("web", publish="team/web")), obs)
    assert plan.actions == () and [r.id for r in plan.repositories] == []
    assert plan.warnings == ("web: upstream lib/web lists no tags, so the repository is not created (a wrong "
                             "upstream_name looks exactly like this on registries that answer an unknown name with an "
                             "empty list); allow_empty: true creates it empty",)
    allowed = diff(desired(synced("web", publish="team/web", allow_empty=True)), obs)
    assert [(a.change, a.op.value) for a in allowed.actions] == [(Change.CREATE, "create_repository"),
                                                                (Change.CREATE, "publish")]
    assert allowed.warnings == ()
    # an existing repository: nothing to sync, and the same words say why
    existing = repo("web", state({}), feed="http://127.0.0.1:5000", upstream="lib/web")
    held = diff(desired(synced("web")), observed({"web": existing}, {"web": {}}))
    assert held.actions == () and "web: upstream lib/web lists no tags: nothing to sync" in held.warnings[0]


def test_upstream_tags_unresolved_are_the_failed_and_the_dropped() -> None:
    tags = UpstreamTags("lib/web", failed={"a": "x"}, dropped=("b",))
    assert tags.unresolved == {"a", "b"}


def test_a_watch_tick_with_only_failed_tags_reports_them(store: Store, tmp_path: Path,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing else to apply must not make the tick look clean: the failed tag is an error."""
    from reconciler import api
    from reconciler.watch.run import reconcile_once

    yaml = tmp_path / "repos.yaml"
    yaml.write_text("version: 1\nrepositories:\n  web: {feed: 'http://127.0.0.1:9', upstream_name: lib/web}\n")
    plan = dataclasses.replace(_plan_with_a_failed_tag(), actions=())
    monkeypatch.setattr(api, "plan_observed", lambda *a, **k: (plan, observed({}, {"web": {}})))
    outcome = reconcile_once(store, yaml, {}, lock_timeout=1, command="watch")
    assert outcome.errors == (f"web: tag v2: {WHY}",) and outcome.apply_result is None
