"""Crash safety of version dropping and of gc, point by point (as test_apply_crashes.py):
SIGKILL a real ``reconciler apply`` with ``retain_versions`` at every store write event
(the version commit that drops the old latest in its transaction, the publish, the drop
of the previously published version), and a real ``reconciler store gc`` at every step
(its rows deleted, each file removed). After each kill, nothing a kept version holds is
lost (``store check`` is clean), and running the command again reaches exactly the state
an uninterrupted run reaches. Without a publish grace period (``RECONCILER_PUBLISH_GRACE=0``),
so the version the publish leaves is dropped in the same apply.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from reconciler import api
from reconciler.store.sql.grace import GRACE_ENV
from reconciler.store.sqlite import SQLiteStore
from tests.integration.test_apply_crashes import kill_points, snapshot
from tests.support.cli import RunCli
from tests.support.crashpoints import MODULE as CRASHPOINTS
from tests.support.imagegen import build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.integration


def write_yaml(path: Path, registry: RunningRegistry, upstream: str) -> Path:
    # one request at a time: the write events come in the same order in every run
    path.write_text(f"""version: 1
registries:
  up: {{url: "{registry.url}", tls_verify: false, max_concurrency: 1}}
repositories:
  web: {{feed: up, upstream_name: {upstream}, mirror: true, prune: true, retain_versions: 1, publish: team/web}}
""")
    return path


def versions(root: Path) -> list[int]:
    store = SQLiteStore(root)
    try:
        return [v.number for v in store.version_list("web")]
    finally:
        store.close()


def files(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for area in ("blobs", "manifests") for p in (root / area).rglob("*") if p.is_file()}


def test_sigkill_at_every_point_of_an_apply_that_drops_versions_then_rerun_converges(
        registry: RunningRegistry, repo_name: str, tmp_path: Path, run_cli: RunCli,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(GRACE_ENV, "0")  # for the subprocesses (run_cli passes the environment on) and the re-runs
    push_image(registry.url, repo_name, build_image("drop-1"), ["latest"])
    yaml = write_yaml(tmp_path / "repos.yaml", registry, repo_name)
    before = tmp_path / "before"
    run_cli("apply", "-f", str(yaml), store=before, check=True)  # version 1, published
    assert versions(before) == [1]
    push_image(registry.url, repo_name, build_image("drop-2"), ["latest"])

    reference = tmp_path / "reference"
    shutil.copytree(before, reference)
    log = tmp_path / "writes.log"
    out = run_cli("apply", "-f", str(yaml), store=reference, check=True, env={"RECONCILER_APPLY_WRITE_LOG": str(log)},
                  module=CRASHPOINTS)
    assert "Dropped versions: web 1 (`reconciler store gc` frees their bytes)." in out.stdout
    events = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
    # version 2 drops nothing with it (1 is published); 1 goes after the publish moved off it
    assert events[-3:] == ["version_commit", "publish", "versions_drop"]
    assert versions(reference) == [2]
    expected = snapshot(reference)

    for n in kill_points(events):
        store = tmp_path / f"killed-at-{n}"
        shutil.copytree(before, store)
        killed = run_cli("apply", "-f", str(yaml), store=store, env={"RECONCILER_APPLY_KILL_AT": f"write:{n}"},
                         module=CRASHPOINTS)
        assert killed.returncode == -9, f"write {n} ({events[n - 1]}): {killed.stdout}{killed.stderr}"
        s = SQLiteStore(store)
        try:
            check = s.check()  # whatever was dropped or not, the kept versions are complete
            assert check.ok, (n, events[n - 1], check.problems)
            _, result = api.apply_file(s, yaml)  # the re-run
            assert result.ok, (n, result.to_json())
            s.gc()
            assert s.check().ok
        finally:
            s.close()
        assert snapshot(store) == expected, f"killed at write {n} ({events[n - 1]})"
        assert len(versions(store)) == 1, (n, events[n - 1], versions(store))


def test_sigkill_at_every_step_of_gc_then_gc_again_converges(tmp_path: Path, run_cli: RunCli) -> None:
    from tests.support.serving import commit_tags

    before = tmp_path / "before"
    s = SQLiteStore(before)
    try:
        base = build_image("gc-base")
        for i in range(4):
            commit_tags(s, "web", {"latest": build_image(f"gc-{i}"), "base": base})
        s.publish("web", name="team/web", version=4, protected=False)
        s.versions_drop("web", [0, 1, 2])  # the images of versions 1 and 2 are garbage now
    finally:
        s.close()

    reference = tmp_path / "reference"
    shutil.copytree(before, reference)
    log = tmp_path / "gc.log"
    run_cli("store", "gc", store=reference, check=True, env={"RECONCILER_GC_WRITE_LOG": str(log)}, module=CRASHPOINTS)
    events = [line.split(" ", 1)[1] for line in log.read_text().splitlines()]
    assert events[0] == "rows" and len(events) == 1 + 2 * (1 + 3)  # 2 manifests, 2 x 3 blobs
    expected_files, expected = files(reference), snapshot(reference)

    for n in range(1, len(events) + 1):
        store = tmp_path / f"gc-killed-at-{n}"
        shutil.copytree(before, store)
        killed = run_cli("store", "gc", store=store, env={"RECONCILER_GC_KILL_AT": f"write:{n}"},
                         module=CRASHPOINTS)
        assert killed.returncode == -9, f"step {n} ({events[n - 1]}): {killed.stderr}"
        assert run_cli("store", "check", store=store).returncode == 0, (n, events[n - 1])
        again = run_cli("store", "gc", store=store, check=True)
        assert again.stdout.startswith("freed ")
        assert files(store) == expected_files, (n, events[n - 1])
        assert snapshot(store) == expected
        assert run_cli("store", "check", store=store).returncode == 0
