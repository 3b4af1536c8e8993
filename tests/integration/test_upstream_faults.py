"""Upstream faults during sync and apply, through the real CLI (subprocesses, real exit
codes) against the real distribution registry behind ``FaultProxy``: bursts of 5xx, 429
with Retry-After, connections reset mid-blob, bodies that stall, corrupted bodies, a
manifest whose blob is gone, an upstream that lost its tags.

What a user relies on: temporary faults are retried and the run completes; a fault that
persists fails only what it touches, with exit code 1 and a message naming the digest and
URL; the repository it touched is unchanged, nothing partial is stored (``store check`` is
clean, no temp file is left), and a re-run after the upstream recovers completes. A
mirror is never wiped because its upstream failed or answered an empty tag list.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from reconciler.model import Digest
from reconciler.store.sqlite import SQLiteStore
from tests.support.cli import RunCli
from tests.support.faultproxy import FaultDetails, FaultOptions, FaultProxy
from tests.support.imagegen import ManifestImage, build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry


def tags_of(store: Path, repo: str) -> dict[str, str]:
    """The tags of ``repo``'s latest version (read in-process: a CLI run per look costs
    a second on a loaded machine)."""
    s = SQLiteStore(store)
    try:
        return {name: str(entry.digest) for name, entry in s.version_get(repo).tags.items()}
    finally:
        s.close()


def versions_of(store: Path, repo: str) -> list[int]:
    s = SQLiteStore(store)
    try:
        return [v.number for v in s.version_list(repo)]
    finally:
        s.close()


def assert_store_clean(store: Path) -> None:
    """store check passes and no temporary file was left behind."""
    s = SQLiteStore(store)
    try:
        report = s.check()
        assert report.ok, report.problems
    finally:
        s.close()
    assert list((store / "tmp").iterdir()) == []


def last_layer(img: ManifestImage) -> Digest:
    return img.manifest.layers[-1].digest


def sync_args(proxy: FaultProxy, upstream: str, *extra: str, repo: str = "app") -> list[str]:
    return ["sync", repo, "--feed", proxy.url, "--upstream-name", upstream, "--no-tls-verify",
            "--timeout", "1", "--retries", "3", *extra]


# (fault kind, what it hits, options): every one of them ends before the retries run out
TEMPORARY: dict[str, tuple[str, str, FaultOptions]] = {
    "503-burst-on-tag-list": ("status", "tags", {"times": 2, "status": 503}),
    "502-burst-on-blob": ("status", "blob", {"times": 3, "status": 502}),
    "429-retry-after-on-manifest": ("status", "manifest", {"times": 1, "status": 429,
                                                          "headers": {"Retry-After": "1"}}),
    "reset-mid-blob": ("reset", "blob", {"times": 2, "after": 20}),
    "stall-mid-blob": ("stall", "blob", {"times": 1, "after": 20}),
}


@pytest.mark.parametrize("case", list(TEMPORARY), ids=list(TEMPORARY))
def test_temporary_faults_are_retried_and_the_sync_completes(
        case: str, proxy: FaultProxy, registry: RunningRegistry, repo_name: str, tmp_path: Path,
        run_cli: RunCli) -> None:
    img = build_image(f"faults-{case}")
    push_image(registry.url, repo_name, img, ["v1", "latest"])
    kind, target, options = TEMPORARY[case]
    pattern = {"tags": r"^GET .*/tags/list$", "manifest": r"^(GET|HEAD) .*/manifests/",
               "blob": f"^GET .*/blobs/{last_layer(img)}$"}[target]
    fault = proxy.add(pattern, kind, **options)
    store = tmp_path / "store"
    done = run_cli(*sync_args(proxy, repo_name, "--json"), store=store)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["tags_added"] == ["latest", "v1"]
    assert fault.hits == options["times"]
    # every request that met the fault was sent again, and went through in the end
    for i, entry in enumerate(proxy.log):
        request, outcome = entry.split(" -> ")
        if outcome == kind:
            assert f"{request} -> forwarded" in proxy.log[i + 1:], proxy.log
    assert tags_of(store, "app") == {"v1": str(img.digest), "latest": str(img.digest)}
    assert_store_clean(store)


# faults that last: the blob of the moved tag never arrives intact
PERMANENT: dict[str, tuple[str, FaultDetails]] = {
    "blob-404": ("not_found", {}),
    "blob-reset-every-time": ("reset", {"after": 20}),
    "blob-stalls-every-time": ("stall", {"after": 20}),
    "blob-corrupt-digest-mismatch": ("corrupt", {}),
}
EXPECTED_ERROR = {"blob-404": "BLOB_UNKNOWN", "blob-reset-every-time": "Connection reset by peer",
                  "blob-stalls-every-time": "timed out", "blob-corrupt-digest-mismatch": "digest mismatch"}


@pytest.mark.parametrize("case", list(PERMANENT), ids=list(PERMANENT))
def test_a_lasting_fault_fails_the_sync_changes_nothing_and_a_rerun_completes(
        case: str, proxy: FaultProxy, registry: RunningRegistry, repo_name: str, tmp_path: Path,
        run_cli: RunCli) -> None:
    old, new = build_image(f"lasting-old-{case}"), build_image(f"lasting-new-{case}")
    push_image(registry.url, repo_name, old, ["v1"])
    store = tmp_path / "store"
    run_cli(*sync_args(proxy, repo_name), store=store, check=True)
    versions = versions_of(store, "app")

    push_image(registry.url, repo_name, new, ["v1"])  # the tag moves upstream to an image ...
    victim = last_layer(new)
    kind, options = PERMANENT[case]
    proxy.add(f"^GET .*/blobs/{victim}$", kind, times=None, **options)  # ... whose layer never arrives
    failed = run_cli(*sync_args(proxy, repo_name, "--retries", "1"), store=store)
    assert failed.returncode == 1, failed.stdout + failed.stderr
    assert "error: tag v1: fetching blob " + str(victim) in failed.stderr and "tag 'v1'" in failed.stderr
    assert f"{proxy.url}/v2/{repo_name}/blobs/{victim}" in failed.stderr
    assert EXPECTED_ERROR[case] in failed.stderr, failed.stderr
    # unchanged: same tags, no new version, the bad blob is not stored, nothing half-written
    assert tags_of(store, "app") == {"v1": str(old.digest)}
    assert versions_of(store, "app") == versions
    assert not (store / "blobs" / "sha256" / victim.hex[:2] / victim.hex).exists()
    assert_store_clean(store)

    proxy.clear()  # the upstream recovers
    rerun = run_cli(*sync_args(proxy, repo_name), store=store)
    assert rerun.returncode == 0, rerun.stderr
    assert tags_of(store, "app") == {"v1": str(new.digest)}
    assert_store_clean(store)


def write_yaml(path: Path, proxy: FaultProxy, upstreams: dict[str, str], *, mirror: tuple[str, ...] = (),
               extra: str = "") -> Path:
    """repos.yaml syncing each repository from ``proxy``; ``extra`` keys (``, allow_empty:
    true``) go to every repository."""
    repos = "\n".join(f"  {repo}: {{feed: up, upstream_name: {name}{', mirror: true' if repo in mirror else ''}{extra}}}"
                      for repo, name in upstreams.items())
    path.write_text(f"""version: 1
registries:
  up: {{url: "{proxy.url}", tls_verify: false, timeout: 1, retries: 1, max_concurrency: 2}}
repositories:
{repos}
""")
    return path


def test_apply_fails_only_the_repositories_whose_upstream_fails_and_a_rerun_converges(
        proxy: FaultProxy, registry: RunningRegistry, repo_name: str, tmp_path: Path,
        run_cli: RunCli) -> None:
    faults = {"gone": "not_found", "cut": "reset", "stalled": "stall", "bad": "corrupt"}
    repos = ["fine", *faults]
    upstreams = {r: f"{repo_name}-{r}" for r in repos}
    old = {r: build_image(f"apply-old-{r}") for r in repos}
    new = {r: build_image(f"apply-new-{r}") for r in repos}
    for r in repos:
        push_image(registry.url, upstreams[r], old[r], ["v1"])
    yaml = write_yaml(tmp_path / "repos.yaml", proxy, upstreams)
    store = tmp_path / "store"
    run_cli("apply", "-f", str(yaml), store=store, check=True)

    for r in repos:  # every upstream moves v1; four of them serve the new image's last layer badly
        push_image(registry.url, upstreams[r], new[r], ["v1"])
    for r, kind in faults.items():
        proxy.add(f"^GET /v2/{upstreams[r]}/blobs/{last_layer(new[r])}$", kind, times=None, after=20)
    applied = run_cli("apply", "-f", str(yaml), store=store)
    assert applied.returncode == 1, applied.stdout + applied.stderr
    assert "Apply FAILED: 1 done, 4 failed, 0 skipped" in applied.stdout, applied.stdout
    failures = [line for line in applied.stderr.splitlines() if line.startswith("failed: ")]
    assert len(failures) == 4, applied.stderr
    for r in faults:  # one line per failure, naming the repository, the blob and where it came from
        line = next((f for f in failures if f.startswith(f"failed: {r}/sync_tag/v1: ")), None)
        assert line is not None, applied.stderr
        assert f"fetching blob {last_layer(new[r])} (tag 'v1') from {upstreams[r]}" in line, line
    tags = {r: tags_of(store, r) for r in repos}
    assert tags == {"fine": {"v1": str(new["fine"].digest)},
                    **{r: {"v1": str(old[r].digest)} for r in faults}}
    assert_store_clean(store)

    proxy.clear()
    rerun = run_cli("apply", "-f", str(yaml), store=store)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert {r: tags_of(store, r) for r in repos} == {r: {"v1": str(new[r].digest)} for r in repos}
    assert run_cli("plan", "-f", str(yaml), "--detailed-exitcode", store=store).returncode == 0
    assert_store_clean(store)


# what the upstream's tag list does: (fault kind, options, apply's exit code)
OUTAGES: dict[str, tuple[str, FaultDetails, int]] = {
    "empty-tag-list": ("empty_tags", {}, 0),
    "503-forever": ("status", {"status": 503}, 1),
    "404-name-unknown": ("not_found", {}, 1),
}


@pytest.mark.parametrize("case", list(OUTAGES), ids=list(OUTAGES))
def test_a_mirror_is_never_wiped_by_an_outage(case: str, proxy: FaultProxy, registry: RunningRegistry,
                                             repo_name: str, tmp_path: Path, run_cli: RunCli) -> None:
    imgs = [build_image(f"mirror-{case}-{i}") for i in range(2)]
    push_image(registry.url, repo_name, imgs[0], ["v1"])
    push_image(registry.url, repo_name, imgs[1], ["v2"])
    yaml = write_yaml(tmp_path / "repos.yaml", proxy, {"mirror": repo_name}, mirror=("mirror",))
    store = tmp_path / "store"
    run_cli("apply", "-f", str(yaml), store=store, check=True)
    before = tags_of(store, "mirror")
    assert before == {"v1": str(imgs[0].digest), "v2": str(imgs[1].digest)}

    kind, options, code = OUTAGES[case]
    proxy.add(r"^GET .*/tags/list$", kind, times=None, **options)
    applied = run_cli("apply", "-f", str(yaml), store=store)
    assert applied.returncode == code, applied.stdout + applied.stderr
    if code == 0:
        assert "returned no tags matching the filter; the mirror removes nothing (2 tags kept)" in applied.stdout
    else:
        assert "refusing a plan with errors: mirror: refreshing upstream" in applied.stderr, applied.stderr
    synced = run_cli(*sync_args(proxy, repo_name, "--mirror", "--retries", "0", repo="mirror"), store=store)
    assert synced.returncode == code, synced.stdout + synced.stderr
    assert tags_of(store, "mirror") == before
    assert_store_clean(store)
