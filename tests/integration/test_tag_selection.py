"""Tag selection against a real distribution registry: a repository of version-like tags
(pushed in the test; new tags added with skopeo as an upstream would), selected by semver
ranges, carets, tildes, prereleases, ``v`` prefixes and suffix variants, and by newest N
with and without mirror while tags appear and disappear upstream; through the one-off
``sync`` flags and through ``plan``/``apply -f``."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from tests.support.cli import RunCli
from tests.support.imagegen import build_image
from tests.support.pusher import delete_manifest, push_image
from tests.support.registry import RunningRegistry, require_binary

pytestmark = pytest.mark.integration

TAGS = ["1.0.0", "1.2.0", "1.2.3", "v1.2.4", "1.3", "1", "1.9.9", "2.0.0", "2.1.0-rc1", "2.1.0",
        "1.2.3-alpine", "1.3.0-alpine", "1.3.1-rc.1-alpine", "latest", "stable", "20261201", "20261130"]


@pytest.fixture
def versions(registry: RunningRegistry, repo_name: str) -> str:
    """``repo_name`` upstream, holding every tag of ``TAGS`` (three images among them)."""
    images = [build_image(f"{repo_name}-{i}") for i in range(3)]
    for i, tag in enumerate(TAGS):
        push_image(registry.url, repo_name, images[i % 3], [tag])
    return repo_name


def synced(run_cli: RunCli, store: Path, registry: RunningRegistry, name: str, *flags: str) -> list[str]:
    out = run_cli("sync", "r", "--feed", registry.url, "--upstream-name", name, *flags, "--json", store=store,
                  check=True)
    result = json.loads(out.stdout)
    return sorted([*result["tags_added"], *result["tags_moved"]])


@pytest.mark.parametrize("flags, want", [
    (["--semver", ">=1.2.0 <2.0.0"], ["1.2.0", "1.2.3", "1.3", "1.9.9", "v1.2.4"]),
    (["--semver", "^1.2"], ["1.2.0", "1.2.3", "1.3", "1.9.9", "v1.2.4"]),
    (["--semver", "~1.2"], ["1.2.0", "1.2.3", "v1.2.4"]),
    (["--semver", "1.x"], ["1", "1.0.0", "1.2.0", "1.2.3", "1.3", "1.9.9", "v1.2.4"]),
    (["--semver", ">=2 <3"], ["2.0.0", "2.1.0"]),
    (["--semver", ">=2 <3", "--prereleases"], ["2.0.0", "2.1.0", "2.1.0-rc1"]),
    (["--semver", "^1.2", "--semver-suffix", "alpine"], ["1.2.3-alpine", "1.3.0-alpine"]),
    (["--semver", "^1.2", "--semver-suffix", "alpine", "--prereleases"],
     ["1.2.3-alpine", "1.3.0-alpine", "1.3.1-rc.1-alpine"]),
    (["--semver", "^1", "--latest", "2"], ["1.3", "1.9.9"]),
    (["--include", "2026*", "--latest", "1", "--sort", "alphanumeric"], ["20261201"]),
    (["--exclude", "1*", "--semver", "*"], ["2.0.0", "2.1.0", "20261130", "20261201", "v1.2.4"]),
], ids=["range", "caret", "tilde", "x-range", "major-2", "prereleases", "suffix", "suffix-prereleases",
        "newest-2-of-caret", "newest-date-stamp", "exclude-then-semver"])
def test_one_off_sync_selects_by_semver(run_cli: RunCli, registry: RunningRegistry, versions: str, tmp_path: Path,
                                        flags: list[str], want: list[str]) -> None:
    assert synced(run_cli, tmp_path / "store", registry, versions, *flags) == want


def test_a_range_in_include_and_a_bad_range_are_refused_before_anything_happens(
        run_cli: RunCli, registry: RunningRegistry, versions: str, tmp_path: Path) -> None:
    store = tmp_path / "store"
    glob = run_cli("sync", "r", "--feed", registry.url, "--upstream-name", versions, "--include", ">=1.2 <2",
                   store=store)
    assert glob.returncode == 1
    assert "can never match a tag" in glob.stderr and "hint: for a version range use semver" in glob.stderr
    bad = run_cli("sync", "r", "--feed", registry.url, "--upstream-name", versions, "--semver", ">=1.2 <",
                  store=store)
    assert bad.returncode == 1 and "invalid semver range '>=1.2 <'" in bad.stderr
    assert not store.exists() or "r" not in run_cli("repo", "list", store=store).stdout.split()


def write_yaml(path: Path, registry: RunningRegistry, upstream: str, *, mirror: bool) -> Path:
    path.write_text(f"""version: 1
registries:
  up: {{url: '{registry.url}', tls_verify: false}}
repositories:
  app:
    feed: up
    upstream_name: {upstream}
    mirror: {str(mirror).lower()}
    tags:
      semver: ">=1.2.0 <2.0.0"
      latest: 3
""")
    return path


@pytest.mark.parametrize("mirror", [True, False], ids=["mirror", "additive"])
def test_newest_n_follows_the_upstream_as_tags_appear_and_disappear(
        run_cli: RunCli, registry: RunningRegistry, versions: str, tmp_path: Path, mirror: bool) -> None:
    require_binary("skopeo", "skopeo")
    store = tmp_path / "store"
    yaml = write_yaml(tmp_path / "repos.yaml", registry, versions, mirror=mirror)
    plan = run_cli("plan", "-f", str(yaml), store=store, check=True)
    assert f"{len(TAGS)} upstream tags, 3 selected: semver >=1.2.0 <2.0.0, newest 3" in plan.stdout, plan.stdout
    run_cli("apply", "-f", str(yaml), store=store, check=True)

    def tags() -> list[str]:
        shown = json.loads(run_cli("repo", "show", "app", "--json", store=store, check=True).stdout)
        return sorted(shown["tags"])

    assert tags() == ["1.3", "1.9.9", "v1.2.4"]
    assert run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store).returncode == 0

    # upstream: a new release appears (copied with skopeo, as a release pipeline would)
    skopeo = ["skopeo", "copy", "--src-tls-verify=false", "--dest-tls-verify=false"]
    subprocess.run([*skopeo, f"docker://{registry.host}/{versions}:1.9.9", f"docker://{registry.host}/{versions}:1.10.0"],
                   check=True, capture_output=True, timeout=120)
    plan = run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store)
    assert plan.returncode == 2, plan.stdout + plan.stderr
    assert "+ tag 1.10.0" in plan.stdout
    if mirror:
        assert "- tag v1.2.4" in plan.stdout and "dropped out of the newest 3 (mirror)" in plan.stdout
    else:
        assert "tag v1.2.4 dropped out of the newest 3: kept, because mirror is off" in plan.stdout
        assert "- tag" not in plan.stdout
    run_cli("apply", "-f", str(yaml), store=store, check=True)
    assert tags() == (["1.10.0", "1.3", "1.9.9"] if mirror else ["1.10.0", "1.3", "1.9.9", "v1.2.4"])
    assert run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store).returncode == 0

    # upstream: an image is withdrawn (with every tag on it: 1.10.0, 1.9.9, v1.2.4, ...);
    # older releases move up into the newest 3
    shown = json.loads(run_cli("repo", "show", "app", "--json", store=store, check=True).stdout)
    delete_manifest(registry.url, versions, shown["tags"]["1.10.0"])
    run_cli("apply", "-f", str(yaml), store=store, check=True)
    after = tags()
    if mirror:
        assert after == ["1.2.0", "1.2.3", "1.3"]
    else:
        assert after == ["1.10.0", "1.2.0", "1.2.3", "1.3", "1.9.9", "v1.2.4"]
    assert run_cli("store", "check", store=store).returncode == 0


def test_one_off_sync_latest_with_and_without_mirror(run_cli: RunCli, registry: RunningRegistry, versions: str,
                                                     tmp_path: Path) -> None:
    flags = ("--semver", "^1", "--latest", "2")
    mirrored, additive = tmp_path / "mirrored", tmp_path / "additive"
    assert synced(run_cli, mirrored, registry, versions, *flags, "--mirror") == ["1.3", "1.9.9"]
    assert synced(run_cli, additive, registry, versions, *flags) == ["1.3", "1.9.9"]
    push_image(registry.url, versions, build_image(f"{versions}-new"), ["1.10.0"])  # a new release upstream

    out = run_cli("sync", "r", *flags, "--mirror", "--json", store=mirrored, check=True)
    result = json.loads(out.stdout)
    assert result["tags_added"] == ["1.10.0"] and result["tags_removed"] == ["1.3"]
    assert result["selection"] == f"{len(TAGS) + 1} upstream tags, 2 selected: semver ^1, newest 2"
    out = run_cli("sync", "r", *flags, store=additive, check=True)
    assert "tag 1.3 dropped out of the newest 2: kept, because mirror is off" in out.stdout + out.stderr
    for store, want in ((mirrored, ["1.10.0", "1.9.9"]), (additive, ["1.10.0", "1.3", "1.9.9"])):
        shown = json.loads(run_cli("repo", "show", "r", "--json", store=store, check=True).stdout)
        assert sorted(shown["tags"]) == want
        assert run_cli("store", "check", store=store).returncode == 0
