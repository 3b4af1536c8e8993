"""Publish names in the plan: who holds each name, who repos.yaml gives it to, and how
the plan moves it (releases before claims, one transaction, plan-time errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from reconciler.desired.loader import load_desired
from reconciler.desired.model import TagPin
from reconciler.model.content import Origin
from reconciler.plan.actions import Publish, Unpublish
from reconciler.plan.diff import diff, plan_scope
from reconciler.plan.model import Plan
from reconciler.plan.observed import ObservedRepo
from reconciler.plan.render_text import render_text
from tests.support.narrow import narrow
from tests.support.planworld import RepositorySpec, desired, digest, observed, repo, state

P = Origin.PIN


def pinned(repo_id: str, publish: str | None = None, image: str = "a") -> RepositorySpec:
    return RepositorySpec(repo_id, pins=(TagPin("v1", digest=digest(image)),), publish=publish)


def held(repo_id: str, name: str | None, *, published: bool = True, image: str = "a") -> ObservedRepo:
    return repo(repo_id, state({"v1": (image, P)}), publish=name, published=1 if published else None)


def publications(plan: Plan) -> list[tuple[str, str, str | None, str | None, str | None]]:
    return [(a.repo, a.op.value, a.publish_name, a.release_from, a.handover) for a in plan.actions
            if isinstance(a, Publish | Unpublish)]  # the op of these two types


def test_a_renamed_repository_takes_its_name_over_from_the_pruned_one() -> None:
    obs = observed({"app": held("app", "prod/app"), "app2": held("app2", None, published=False)})
    plan = diff(desired(pinned("app2", "prod/app")), obs, prune_repositories=True)
    assert publications(plan) == [("app2", "publish", "prod/app", "app", None)]
    assert not plan.errors
    claim = plan.action("app2/publish/prod/app")
    # the old owner is deleted only once the new one serves the name (a failed claim keeps it)
    assert claim.id in plan.action("app/delete_repository/repository").depends_on
    assert "publish as prod/app   declared in repos.yaml; takes the name from app" in render_text(plan)


def test_two_repositories_swap_their_names_in_one_switch() -> None:
    obs = observed({"blue": held("blue", "prod/live"), "green": held("green", "prod/next", image="b")})
    spec = desired(pinned("blue", "prod/next"), pinned("green", "prod/live", image="b"))
    plan = diff(spec, obs)
    assert sorted(publications(plan)) == [("blue", "publish", "prod/next", "green", "prod/live"),
                                          ("green", "publish", "prod/live", "blue", "prod/live")]
    blue, green = narrow(Publish, plan.action("blue/publish/prod/next")), narrow(Publish, plan.action("green/publish/prod/live"))
    assert blue.handover == green.handover  # applied together, in one store transaction
    assert "in one switch with green" in render_text(plan)


def test_a_name_moves_to_another_declared_repository_and_the_old_one_unpublishes_with_it() -> None:
    obs = observed({"old": held("old", "prod/app"), "new": held("new", None, published=False, image="b")})
    plan = diff(desired(pinned("old"), pinned("new", "prod/app", image="b")), obs)
    assert sorted(publications(plan)) == [("new", "publish", "prod/app", "old", "prod/app"),
                                          ("old", "unpublish", "prod/app", None, "prod/app")]
    assert "the name moves to new" in plan.action("old/unpublish/prod/app").reason


def test_a_handover_waits_for_every_member_s_content() -> None:
    new = repo("new", state({"v1": ("b", P)}, extra=("c",)))
    obs = observed({"old": held("old", "prod/app"), "new": new})
    spec = desired(pinned("old"), RepositorySpec("new", pins=(TagPin("v1", digest=digest("b")),
                                                              TagPin("v2", digest=digest("c"))), publish="prod/app"))
    plan = diff(spec, obs)
    # all or nothing: the old owner's unpublish waits for the new owner's new version too
    assert "new/pin_tag/v2" in plan.action("old/unpublish/prod/app").depends_on
    assert "new/pin_tag/v2" in plan.action("new/publish/prod/app").depends_on


def test_a_name_kept_reserved_after_unpublish_is_given_to_the_repository_that_declares_it() -> None:
    obs = observed({"old": held("old", "prod/app", published=False), "new": held("new", None, published=False)})
    plan = diff(desired(pinned("old"), pinned("new", "prod/app")), obs)
    assert publications(plan) == [("new", "publish", "prod/app", "old", None)]
    assert not plan.errors


def test_a_name_held_by_an_undeclared_repository_is_a_plan_error_at_the_publish_entry(tmp_path: Path) -> None:
    yaml = tmp_path / "repos.yaml"
    pin = f"{{v1: '{digest('a')}'}}"
    yaml.write_text(f"version: 1\nrepositories:\n  app2:\n    pins: {pin}\n    publish: prod/app\n"
                    f"  other:\n    pins: {pin}\n")
    spec = load_desired(yaml)
    obs = observed({"app": held("app", "prod/app"), "app2": held("app2", None, published=False),
                    "other": held("other", None, published=False)})
    plan = diff(spec, obs)
    [error] = plan.errors
    assert (error.repo, error.kind, error.where) == ("app2", "name", f"{yaml}:5:14")
    assert "publish name 'prod/app' is held by repository 'app'" in error.message
    assert "--prune-repositories" in (error.hint or "") and "reconciler unpublish app --release" in (error.hint or "")
    # the claim is not planned, the rest is, and the plan never says "No changes."
    assert publications(plan) == [] and {r.id: r.status for r in plan.repositories}["app2"] == "!"
    assert "No changes." not in render_text(plan) and "Plan incomplete: 1 error" in render_text(plan)


@pytest.mark.parametrize("targets,expect", [
    (["new"], {"new", "old"}),        # the holder it takes the name from
    (["old"], {"old", "new"}),        # the repository that wants the name it holds
    (["other"], {"other"}),
], ids=["claimer", "holder", "unrelated"])
def test_target_includes_the_repositories_a_name_moves_between(targets: list[str], expect: set[str]) -> None:
    spec = desired(pinned("old"), pinned("new", "prod/app"), pinned("other", "prod/other"))
    assert plan_scope(spec, {"old": "prod/app", "new": None, "other": "prod/other"}, targets) == expect
    obs = observed({"old": held("old", "prod/app"), "new": held("new", None, published=False),
                    "other": held("other", "prod/other")})
    plan = diff(spec, obs, targets=targets)
    assert {a.repo for a in plan.actions} <= expect and not plan.errors
