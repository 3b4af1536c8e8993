"""Publish names through the real CLI (offline: the example images): a name moved by a
rename, a swap or a move converges in ONE apply, and a second plan says ``No changes.``;
a name held outside repos.yaml is a plan-time error whose hint works."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.support.cli import RunCli

IMAGES = REPO_ROOT / "examples" / "images"


def write(path: Path, repos: dict[str, str | None], *, extra: str = "") -> Path:
    """One uploaded repository per key, published under the value (None: not published)."""
    text = "version: 1\nrepositories:\n"
    for repo_id, name in repos.items():
        text += f"  {repo_id}:\n    uploads:\n      - {{file: {IMAGES}/hello-v2s2.tar, tag: latest}}\n"
        if name:
            text += f"    publish: {name}\n"
    path.write_text(text + extra)
    return path


def served(run_cli: RunCli, store: Path) -> dict[str, str]:
    repos = json.loads(run_cli("repo", "list", "--json", store=store, check=True).stdout)
    return {r["publish_name"]: r["id"] for r in repos if r.get("publish_name") and r.get("published_version")}


def converges(run_cli: RunCli, yaml: Path, store: Path, *args: str) -> None:
    applied = run_cli("apply", "-f", str(yaml), *args, store=store)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    again = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", *args, store=store)
    assert again.returncode == 0 and again.stdout.rstrip().endswith("No changes."), again.stdout + again.stderr


def test_renaming_a_repository_key_hands_its_name_over_in_one_apply(tmp_path: Path, run_cli: RunCli) -> None:
    store = tmp_path / "store"
    yaml = write(tmp_path / "repos.yaml", {"app": "prod/app"})
    converges(run_cli, yaml, store)
    write(yaml, {"app-v2": "prod/app"})
    plan = run_cli("plan", "-f", str(yaml), "--prune-repositories", store=store)
    assert "publish as prod/app   declared in repos.yaml; takes the name from app" in plan.stdout, plan.stdout
    converges(run_cli, yaml, store, "--prune-repositories")
    assert served(run_cli, store) == {"prod/app": "app-v2"}
    history = run_cli("history", "--json", store=store, check=True)
    last = json.loads(history.stdout)[0]
    # the journal says which publication switched, from where to where
    assert last["result"] == "ok" and {"name": "prod/app", "repo": "app-v2", "version": 1, "from_repo": "app",
                                       "from_version": 1} in last["details"]["publications"]


def test_swapping_two_names_converges_in_one_apply(tmp_path: Path, run_cli: RunCli) -> None:
    store = tmp_path / "store"
    yaml = write(tmp_path / "repos.yaml", {"blue": "prod/live", "green": "prod/next"})
    converges(run_cli, yaml, store)
    write(yaml, {"blue": "prod/next", "green": "prod/live"})
    converges(run_cli, yaml, store)
    assert served(run_cli, store) == {"prod/live": "green", "prod/next": "blue"}


def test_moving_a_name_to_another_repository_converges(tmp_path: Path, run_cli: RunCli) -> None:
    store = tmp_path / "store"
    yaml = write(tmp_path / "repos.yaml", {"old": "prod/app", "new": None})
    converges(run_cli, yaml, store)
    write(yaml, {"old": None, "new": "prod/app"})
    converges(run_cli, yaml, store)
    assert served(run_cli, store) == {"prod/app": "new"}


def test_a_name_held_by_an_undeclared_repository_is_a_plan_error_whose_hint_works(
        tmp_path: Path, run_cli: RunCli) -> None:
    store = tmp_path / "store"
    yaml = write(tmp_path / "repos.yaml", {"app": "prod/app"})
    converges(run_cli, yaml, store)
    write(yaml, {"app-v2": "prod/app"})
    plan = run_cli("plan", "-f", str(yaml), store=store)
    assert plan.returncode == 1
    assert f"Error: {yaml}:6:14: app-v2: publish name 'prod/app' is held by repository 'app'" in plan.stdout
    assert "reconciler unpublish app --release" in plan.stdout
    refused = run_cli("apply", "-f", str(yaml), store=store)
    assert refused.returncode == 1 and "refusing a plan with errors" in refused.stderr
    assert served(run_cli, store) == {"prod/app": "app"}  # nothing changed
    released = run_cli("unpublish", "app", "--release", store=store)
    assert released.returncode == 0 and "no publish name reserved" in released.stdout, released.stderr
    converges(run_cli, yaml, store)
    assert served(run_cli, store) == {"prod/app": "app-v2"}
