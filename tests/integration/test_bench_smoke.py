"""The benchmark harness runs end to end with tiny parameters (so it cannot rot) and
writes a result with every section and sane numbers. Timings are not checked against
targets here: only `make bench` measures speed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import REPO_ROOT

#: every section (their reconciler commands are all on main: apply, plan, serve, publish, store du)
SECTIONS = ("cold_sync", "refresh", "push", "latency", "cold_sync_big", "plan_scale", "serving", "memory", "serving_scaleout",
            "store_du", "startup", "large_store")


def _positive(d: dict[str, Any], *keys: str) -> None:
    for k in keys:
        assert isinstance(d[k], (int, float)) and d[k] > 0, f"{k} = {d[k]!r} in {d}"


def check_cold_sync(s: dict[str, Any]) -> None:
    for client in ("raw", "raw_durable", "skopeo_dir", "skopeo_docker", "ours"):
        _positive(s[client], "wall_s", "requests", "get_bytes", "mb_per_s")
        assert s[client]["get_bytes"] >= s["unique_blob_bytes"], client
    for raw in ("raw", "raw_durable"):  # every unique blob once, nothing else
        assert s[raw]["blob_requests"] == s[raw]["requests"], raw
    assert s["raw_durable"]["processes"] == 2  # curl, then the fsync step
    _positive(s["ratios"], "skopeo_dir_wall_over_ours", "ours_of_raw_throughput", "ours_of_raw_durable_throughput")


def check_regsync(s: dict[str, Any], ratio: str | None = None) -> None:
    """regsync is optional (a peer binary, not a package): its row, or a note saying why not."""
    if "regsync" in s:
        _positive(s["regsync"], "wall_s", "requests")
        if ratio:
            _positive(s["ratios"], ratio)
    else:
        assert "regsync" in s["regsync_note"]


def check_refresh(s: dict[str, Any]) -> None:
    for client in ("skopeo", "ours_plan", "ours_apply"):
        _positive(s[client], "wall_s", "requests")
        assert s[client]["blob_requests"] == 0, f"{client} downloaded blobs although nothing changed"
    _positive(s["ratios"], "skopeo_wall_over_ours_plan")
    check_regsync(s, "regsync_wall_over_ours_plan")


def check_latency(s: dict[str, Any]) -> None:
    for client in ("ours_cold_direct", "ours_cold_latency", "ours_plan", "skopeo"):
        _positive(s[client], "wall_s", "requests")
    assert s["ours_plan"]["blob_requests"] == 0 and s["ours_plan"]["manifest_requests_per_tag"] == 1
    # every request pays the proxy's round trip: a no-change plan cannot beat one per tag list
    assert s["ours_plan"]["wall_s"] > s["rtt_ms"] / 1000
    _positive(s["ratios"], "skopeo_wall_over_ours_plan", "cold_latency_over_direct")
    check_regsync(s, "regsync_wall_over_ours_plan")


def check_cold_sync_big(s: dict[str, Any]) -> None:
    for client in ("raw", "raw_durable", "skopeo_dir", "ours"):
        _positive(s[client], "wall_s", "get_bytes")
        assert s[client]["get_bytes"] >= s["unique_blob_bytes"], client
    assert s["shape"]["layers"] == 3
    _positive(s["ratios"], "skopeo_dir_wall_over_ours", "ours_of_raw_throughput", "ours_of_raw_durable_throughput")
    check_regsync(s, "regsync_wall_over_ours")


def check_startup(s: dict[str, Any]) -> None:
    for cmd in ("python_pass", "version", "validate_demo"):
        _positive(s[cmd], "wall_s", "peak_rss_mb")
        assert len(s[cmd]["walls_s"]) == s[cmd]["runs"]


def check_large_store(s: dict[str, Any]) -> None:
    for backend in ("sqlite", "postgresql"):
        b = s[backend]
        assert b["manifests"] == b["repos"] * 5  # the smoke scale: 20 x 5
        for step in ("check_quick", "du", "plan", "gc"):
            _positive(b[step], "wall_s", "peak_rss_mb")
        _positive(b["serve"], "requests", "requests_per_s", "latency_p99_ms")
        assert b["serve"]["errors"] == 0


def check_plan_scale(s: dict[str, Any]) -> None:
    scales = [v for v in s.values() if isinstance(v, dict) and "repos" in v]
    assert scales
    for v in scales:
        _positive(v, "wall_s", "peak_rss_mb", "yaml_bytes")
        assert v["actions"] == 0  # the no-change plan: the store holds exactly the desired state
        assert v["peak_rss_mb"] > 5  # a Python process, not the 1 MB of the time(1) wrapper


def check_serving(s: dict[str, Any]) -> None:
    for server in ("registry", "ours"):
        for load in ("manifest_get", "manifest_head", "blob_get"):
            _positive(s[server][load], "requests", "requests_per_s")
            assert s[server][load]["errors"] == 0
    _positive(s["ratios"], "manifest_get_rps", "manifest_head_rps", "blob_mb_per_s")


def check_memory(s: dict[str, Any]) -> None:
    _positive(s["sync"], "wall_s", "peak_rss_mb")
    assert s["sync"]["get_bytes"] >= s["layer_bytes"]
    _positive(s["serve"], "mb_per_s", "peak_rss_mb")
    _positive(s["registry_serve"], "mb_per_s")


def check_serving_scaleout(s: dict[str, Any]) -> None:
    for replica, loads in (("registry", ("manifest_get", "manifest_head", "blob_get")),
                           ("folder", ("manifest_get", "manifest_head", "blob_get")),
                           ("cached", ("manifest_get", "manifest_head", "blob_get")),
                           ("uncached", ("manifest_get", "manifest_head", "blob_get")),
                           ("redirect", ("manifest_get", "manifest_head", "blob_redirect"))):
        for load in loads:
            _positive(s[replica][load], "requests", "requests_per_s")
            assert s[replica][load]["errors"] == 0, (replica, load)
    _positive(s["ratios"], "manifest_get_cached_over_uncached", "folder_manifest_get_rps", "folder_blob_mb_per_s",
              "cached_manifest_get_rps", "cached_blob_mb_per_s")


def check_push(s: dict[str, Any]) -> None:
    for run in ("ours_cold", "skopeo_cold", "ours_plan", "ours_apply", "skopeo"):
        _positive(s[run], "wall_s", "requests")
    assert s["ours_cold"]["blob_requests"] > 0
    # nothing to change: one HEAD per tag at the target (and a ping), never a blob
    assert set(s["ours_apply"]["target_by_method"]) <= {"HEAD", "GET"} and s["ours_apply"]["blob_requests"] == 0
    assert s["ours_plan"]["manifest_requests"] == s["tags"]
    _positive(s["ratios"], "skopeo_cold_wall_over_ours", "skopeo_rerun_wall_over_ours_apply")


def check_store_du(s: dict[str, Any]) -> None:
    [scale] = [v for v in s.values() if isinstance(v, dict) and "repos" in v]
    _positive(scale, "wall_s", "peak_rss_mb", "total_bytes", "old_versions_bytes")
    assert scale["manifests"] == scale["repos"] * 10  # the smoke scale: 10 manifests per repository


CHECKS = {"cold_sync": check_cold_sync, "refresh": check_refresh, "push": check_push, "latency": check_latency,
          "cold_sync_big": check_cold_sync_big, "startup": check_startup, "large_store": check_large_store, "plan_scale": check_plan_scale,
          "serving": check_serving, "memory": check_memory, "serving_scaleout": check_serving_scaleout,
          "store_du": check_store_du}


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess[str], Path]:
    out = tmp_path_factory.mktemp("bench")
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--name", "smoke", "--sections", ",".join(SECTIONS),
         "--out-dir", str(out), "--markdown", str(out / "BENCHMARKS.md"), "--work-root", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=600)
    return proc, out


def test_smoke_run_succeeds_and_writes_every_section(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    proc, out = smoke
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads((out / "smoke.json").read_text())
    assert list(result["sections"]) == list(SECTIONS)
    failed = {n: s["error"] for n, s in result["sections"].items() if s["status"] != "ok"}
    assert not failed
    for fact in ("cpu_model", "cores", "memory_mib", "python", "skopeo", "registry", "reconciler", "git_commit"):
        assert result["machine"][fact], fact
    assert result["fixtures"]["indexes"] == 2 and result["fixtures"]["blob_bytes"] > 0


@pytest.mark.parametrize("section", SECTIONS)
def test_smoke_section_numbers_are_sane(smoke: tuple[subprocess.CompletedProcess[str], Path], section: str) -> None:
    result = json.loads((smoke[1] / "smoke.json").read_text())
    CHECKS[section](result["sections"][section])


def test_smoke_markdown_lists_every_target(smoke: tuple[subprocess.CompletedProcess[str], Path]) -> None:
    from bench.report import TARGETS

    md = (smoke[1] / "BENCHMARKS.md").read_text()
    result = json.loads((smoke[1] / "smoke.json").read_text())
    assert len(result["targets"]) == len(TARGETS)
    for t in TARGETS:
        assert t.text in md
    statuses = {r["status"] for r in result["targets"] if r["section"] in SECTIONS}
    assert statuses <= {"pass", "MISS", "n/a (scale)", "n/a (no regsync)"}, statuses
