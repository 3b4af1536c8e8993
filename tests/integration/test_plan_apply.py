"""Plan and apply end to end: the real CLI (subprocesses, real exit codes) against a real
distribution registry on loopback, mutated between runs the way upstreams change."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.support.cli import RunCli
from tests.support.crashpoints import MODULE as CRASHPOINTS
from tests.support.imagegen import Image, build_image, build_multiarch
from tests.support.pusher import delete_manifest, push_image
from tests.support.registry import RunningRegistry

IMAGES: dict[str, Image] = {n: build_image(f"plan-e2e-{n}") for n in ("a", "b", "c", "d")}
IMAGES["multi"] = build_multiarch("plan-e2e-multi")


def short(img: Image) -> str:
    return img.digest.short()


def write_yaml(path: Path, registry: RegistryLike, upstream: str) -> Path:
    path.write_text(f"""version: 1
registries:
  up:
    url: {registry.url}
    tls_verify: false
repositories:
  web:
    feed: up
    upstream_name: {upstream}
    mirror: true
    publish: team/web
  prod:
    copy:
      - {{from: web, tags: [latest]}}
    pins:
      stable: web:v2
    publish: team/prod
""")
    return path


RegistryLike = RunningRegistry


def tags_of(run_cli: RunCli, store: Path, repo: str) -> dict[str, str]:
    proc = run_cli("repo", "show", repo, "--json", store=store, check=True)
    tags: dict[str, str] = json.loads(proc.stdout)["tags"]
    return tags


def test_apply_converges_and_plans_show_exactly_the_upstream_changes(
        registry: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    push_image(registry.url, repo_name, IMAGES["a"], ["v1"])
    push_image(registry.url, repo_name, IMAGES["b"], ["v2", "latest"])
    yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name)
    store = tmp_path / "store"

    first = run_cli("apply", "-f", str(yaml), store=store)
    assert first.returncode == 0, first.stderr
    assert "Apply complete" in first.stdout
    # not a terminal: plain progress lines per repository on stderr
    assert re.search(r"^web: downloaded \d+ blobs, [\d.]+ (KiB|MiB)$", first.stderr, re.M), first.stderr
    again = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert again.returncode == 0, again.stdout + again.stderr
    assert again.stdout.rstrip().endswith("No changes.")
    assert tags_of(run_cli, store, "prod") == {"latest": str(IMAGES["b"].digest), "stable": str(IMAGES["b"].digest)}

    # upstream: v2 moves, v1 is deleted, v3 is added
    push_image(registry.url, repo_name, IMAGES["c"], ["v2"])
    delete_manifest(registry.url, repo_name, str(IMAGES["a"].digest))
    push_image(registry.url, repo_name, IMAGES["multi"], ["v3"])
    plan = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert plan.returncode == 2, plan.stderr
    lines = [line.strip() for line in plan.stdout.splitlines() if line.startswith("      ")]
    downloads = [re.search(r"; (\d+) blobs?, .* to download$", line) for line in lines]
    changed = [re.sub(r"; \d+ blobs?, .* to download$", "", line) for line in lines]
    assert changed == [
        f"~ tag v2   {short(IMAGES['b'])} -> {short(IMAGES['c'])}   tag moved upstream",
        f"+ tag v3   {short(IMAGES['multi'])}   new upstream tag",
        f"- tag v1   {short(IMAGES['a'])}   tag gone upstream (mirror); cascade: 1 manifest, 3 blobs",
        "~ publish as team/web   new version",
        f"~ tag stable   {short(IMAGES['b'])} -> {short(IMAGES['c'])} (web:v2)   declared in repos.yaml   (after web)",
        "~ publish as team/prod   new version",
    ]
    # the blobs the store lacks, counted once: c's 3, and the index's children's (one base layer shared)
    assert [int(m.group(1)) if m else 0 for m in downloads] == [
        3, len(IMAGES["multi"].all_blobs()), 0, 0, 0, 0]
    assert plan.stdout.rstrip().splitlines()[-1].startswith("Plan: 1 to add, 4 to change, 1 to remove.")
    applied = run_cli("-q", "apply", "-f", str(yaml), store=store)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert applied.stderr == ""  # -q: no progress, no log lines
    assert run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store).returncode == 0
    assert tags_of(run_cli, store, "web") == {"v2": str(IMAGES["c"].digest), "v3": str(IMAGES["multi"].digest),
                                              "latest": str(IMAGES["b"].digest)}
    assert run_cli("store", "check", store=store).returncode == 0


def test_saved_plan_lands_the_reviewed_digests_and_a_stale_plan_is_refused(
        registry: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    push_image(registry.url, repo_name, IMAGES["b"], ["v2", "latest"])
    yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name)
    store = tmp_path / "store"
    saved = tmp_path / "plan.json"
    made = run_cli("plan", "-f", str(yaml), "--out", str(saved), "--detailed-exitcode", store=store)
    assert made.returncode == 2, made.stderr
    # the upstream moves after the review: apply still lands what was reviewed
    push_image(registry.url, repo_name, IMAGES["d"], ["v2", "latest"])
    applied = run_cli("apply", str(saved), store=store)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    assert tags_of(run_cli, store, "web")["v2"] == str(IMAGES["b"].digest)
    assert tags_of(run_cli, store, "prod")["stable"] == str(IMAGES["b"].digest)

    # a plan saved before someone else's apply is refused, naming what changed
    second = tmp_path / "plan2.json"
    assert run_cli("plan", "-f", str(yaml), "--out", str(second), store=store).returncode == 0
    assert run_cli("apply", "-f", str(yaml), store=store).returncode == 0
    stale = run_cli("apply", str(second), store=store)
    assert stale.returncode == 1
    assert "stale plan" in stale.stderr and "generation" in stale.stderr
    assert tags_of(run_cli, store, "web")["v2"] == str(IMAGES["d"].digest)
    history = json.loads(run_cli("history", "--json", store=store, check=True).stdout)
    assert [e["result"] for e in history] == ["ok", "ok"]
    assert history[-1]["plan_digest"].startswith("sha256:") and history[-1]["command"] == f"apply {saved}"


@pytest.mark.parametrize("point", ["blob:2", "batch:1", "commit:web", "repo:web"],
                         ids=["between-blobs", "content-files-in-place-rows-not-yet", "during-publish",
                              "between-repositories"])
def test_sigkill_then_rerun_converges(point: str, registry: RunningRegistry, repo_name: str, tmp_path: Path,
                                     run_cli: RunCli) -> None:
    push_image(registry.url, repo_name, IMAGES["multi"], ["v2", "latest"])
    yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name)
    store = tmp_path / "store"
    killed = run_cli("apply", "-f", str(yaml), store=store, env={"RECONCILER_APPLY_KILL_AT": point},
                     module=CRASHPOINTS)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    rerun = run_cli("apply", "-f", str(yaml), store=store)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store).returncode == 0
    assert run_cli("store", "check", store=store).returncode == 0
    history = json.loads(run_cli("history", "--json", store=store, check=True).stdout)
    assert [e["result"] for e in history] == ["ok", "interrupted"]
    assert tags_of(run_cli, store, "prod") == {"latest": str(IMAGES["multi"].digest),
                                               "stable": str(IMAGES["multi"].digest)}


def with_an_unreachable_feed(registry: RunningRegistry, repo_name: str, path: Path, repositories: str,
                             gone: str = "") -> tuple[Path, int]:
    """repos.yaml with feed ``up`` (the registry, holding image a as v1) and feed ``gone``
    (a port nothing listens on: bound, then released) and ``repositories`` below; and
    that port."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    push_image(registry.url, repo_name, IMAGES["a"], ["v1"])
    path.write_text(f"""version: 1
registries:
  up: {{url: "{registry.url}", tls_verify: false}}
  gone: {{url: "http://127.0.0.1:{closed}", tls_verify: false{gone}}}
repositories:
{repositories}""")
    return path, closed


def test_an_unreachable_upstream_fails_its_repository_only_and_apply_refuses_the_plan(
        registry: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    yaml, closed = with_an_unreachable_feed(registry, repo_name, tmp_path / "repos.yaml", f"""\
  web: {{feed: up, upstream_name: {repo_name}}}
  lost: {{feed: gone, upstream_name: lib/lost}}
""")
    store = tmp_path / "store"
    saved = tmp_path / "plan.json"
    plan = run_cli("plan", "-f", str(yaml), "--out", str(saved), store=store)
    assert plan.returncode == 1, plan.stdout + plan.stderr
    # the reachable repository is planned in full; the other is shown with its error
    assert f"+ tag v1   {short(IMAGES['a'])}   new upstream tag" in plan.stdout
    assert "! lost  (gone: lib/lost)  could not be planned: see the error below" in plan.stdout
    assert re.search(rf"^Error: lost: refreshing upstream lib/lost failed: .*127\.0\.0\.1:{closed}",
                     plan.stdout, re.M), plan.stdout
    # each error once (not in the header, the log, the plan and stderr again), and never "No changes."
    both = plan.stdout + plan.stderr
    assert both.count("refreshing upstream lib/lost failed") == 1, both
    assert "No changes." not in plan.stdout
    assert re.search(r"^Plan incomplete: 1 repository could not be refreshed\. For the rest: 3 to add",
                     plan.stdout, re.M), plan.stdout
    assert "error: plan incomplete: 1 repository could not be refreshed" in plan.stderr
    assert json.loads(saved.read_text())["errors"][0]["repo"] == "lost"
    for args in (["apply", str(saved)], ["apply", "-f", str(yaml)]):
        refused = run_cli(*args, store=store)
        assert refused.returncode == 1 and "refusing a plan with errors: lost:" in refused.stderr, refused.stderr
    assert json.loads(run_cli("repo", "list", "--json", store=store, check=True).stdout) == []  # nothing applied


def test_skip_unavailable_applies_what_does_not_depend_on_a_failed_upstream(
        registry: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    yaml, _ = with_an_unreachable_feed(registry, repo_name, tmp_path / "repos.yaml", f"""\
  web: {{feed: up, upstream_name: {repo_name}, publish: team/web}}
  lost: {{feed: gone, upstream_name: lib/lost}}
  downstream: {{copy: [{{from: lost, tags: [v1]}}]}}
""", gone=", retries: 0")
    store = tmp_path / "store"
    plan = run_cli("plan", "-f", str(yaml), store=store)
    assert plan.returncode == 1
    assert "Plan incomplete: 1 repository could not be refreshed; 1 waits for it." in plan.stdout, plan.stdout
    applied = run_cli("apply", "-f", str(yaml), "--skip-unavailable", store=store)
    assert applied.returncode == 1, applied.stdout + applied.stderr
    repos = {r["id"] for r in json.loads(run_cli("repo", "list", "--json", store=store, check=True).stdout)}
    assert repos == {"web"}  # the copy from the unreachable repository waits with it
    assert tags_of(run_cli, store, "web") == {"v1": str(IMAGES["a"].digest)}
    assert "skipped: lost/create_repository/repository: its upstream (or a source's) could not be refreshed" \
        in applied.stderr
    entry = json.loads(run_cli("history", "--json", store=store, check=True).stdout)[0]
    assert entry["result"] == "partial"
    # without the flag the same plan is refused, as before
    refused = run_cli("apply", "-f", str(yaml), store=store)
    assert refused.returncode == 1 and "refusing a plan with errors" in refused.stderr


@pytest.mark.parametrize("tags", ["[latest]", "all"])
def test_a_copied_tag_wins_over_the_sync_of_its_repository(
        tags: str, registry: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    """``web`` syncs an upstream that has ``latest`` and also copies ``latest`` from
    ``base``. The copy owns the tag, as a pin or an upload would: the sync leaves it
    alone, so one apply converges. (Before, the sync took the tag back on every plan and
    the copy set it again: exit code 2 forever, a new version per apply.)"""
    push_image(registry.url, repo_name, IMAGES["a"], ["v1", "latest"])
    push_image(registry.url, f"{repo_name}-base", IMAGES["c"], ["latest"])
    yaml = tmp_path / "repos.yaml"
    yaml.write_text(f"""version: 1
registries:
  up:
    url: {registry.url}
repositories:
  base:
    feed: up
    upstream_name: {repo_name}-base
  web:
    feed: up
    upstream_name: {repo_name}
    mirror: true
    copy:
      - {{from: base, tags: {tags}}}
""")
    store = tmp_path / "store"
    first = run_cli("apply", "-f", str(yaml), store=store)
    assert first.returncode == 0, first.stdout + first.stderr
    assert tags_of(run_cli, store, "web") == {"v1": str(IMAGES["a"].digest), "latest": str(IMAGES["c"].digest)}
    for _ in range(2):
        again = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
        assert again.returncode == 0, again.stdout + again.stderr
        assert run_cli("apply", "-f", str(yaml), store=store).returncode == 0
    assert tags_of(run_cli, store, "web") == {"v1": str(IMAGES["a"].digest), "latest": str(IMAGES["c"].digest)}
