"""The benchmark fixture set is reproducible and realistic, and target evaluation reports
pass / MISS / error correctly (bench/fixtures.py, bench/report.py)."""

from __future__ import annotations

import gzip
import io
import json
import tarfile

import pytest

from bench import fixtures, report
from bench.registry import _ACCESS


def test_same_parameters_same_digests() -> None:
    a = fixtures.build(2, 2, 3, 4096, seed=7)
    b = fixtures.build(2, 2, 3, 4096, seed=7)
    assert a.repos == b.repos and a.repos != fixtures.build(2, 2, 3, 4096, seed=8).repos


def test_layers_are_real_gzip_tars_of_the_asked_size() -> None:
    fs = fixtures.build(1, 2, 3, 10_000)  # v2 is an index, v1 a plain manifest
    digest = fs.repos["bench/repo-000"]["v1"]
    mt, raw, refs = fs.manifests[digest]
    layers = json.loads(raw)["layers"]
    assert len(layers) == 3
    for layer in layers:
        blob = fs.blobs[layer["digest"]]
        assert fixtures.sha256(blob) == layer["digest"] and len(blob) == layer["size"]
        with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob))) as tf:
            assert [m.size for m in tf.getmembers()] == [10_000]


def test_two_multiplatform_indexes_with_children_and_shared_layers() -> None:
    fs = fixtures.build(3, 2, 3, 1024)
    s = fs.summary()
    assert s["indexes"] == 2 and s["tags"] == 6
    kinds = {fs.manifests[fs.repos[f"bench/repo-00{i}"]["v2"]][0] for i in range(2)}
    assert kinds == {fixtures.DOCKER_LIST, fixtures.OCI_INDEX}
    # base and repository layers are shared, so unique bytes < bytes counted per tag
    assert s["blob_bytes"] < s["blob_bytes_per_tag_sum"]


@pytest.mark.parametrize("line,expected", [
    ('127.0.0.1 - - [27/Nov/2026:04:38:27 +0000] "GET /v2/a/blobs/sha256:ab HTTP/1.1" 200 1048576 "" "curl"',
     ("GET", "/v2/a/blobs/sha256:ab", "200", "1048576")),
    ('127.0.0.1 - - [27/Nov/2026:04:38:27 +0000] "HEAD /v2/a/manifests/v1 HTTP/1.1" 200 0 "" "x"',
     ("HEAD", "/v2/a/manifests/v1", "200", "0")),
    ('time="2026-11-27T04:38:27Z" level=info msg="response completed" http.request.method=GET', None),
], ids=["blob-get", "manifest-head", "app-log-line"])
def test_access_log_lines(line: str, expected: tuple[str, ...] | None) -> None:
    m = _ACCESS.match(line)
    assert (m.groups() if m else None) == expected


def _result(section: dict[str, object] | None, **params: object) -> dict[str, object]:
    p = {"plan_scales": [[1000, 50]], "big_layer_size": 1 << 30, **params}
    return {"params": p, "sections": {} if section is None else {"memory": section}}


@pytest.mark.parametrize("section,params,status", [
    ({"status": "ok", "sync": {"peak_rss_mb": 80.0}}, {}, "pass"),
    ({"status": "ok", "sync": {"peak_rss_mb": 400.0}}, {}, "MISS"),
    ({"status": "ok", "sync": {"peak_rss_mb": 80.0}}, {"big_layer_size": 4 << 20}, "n/a (scale)"),
    ({"status": "error", "error": "boom"}, {}, "error"),
    (None, {}, "not run"),
], ids=["pass", "miss", "small-layer", "section-error", "not-run"])
def test_target_status(section: dict[str, object] | None, params: dict[str, object], status: str) -> None:
    rows = [r for r in report.evaluate(_result(section, **params)) if r["section"] == "memory"]
    assert [r["status"] for r in rows] == [status]


@pytest.mark.parametrize("section,status", [
    ({"status": "ok", "ratios": {"regsync_wall_over_ours_plan": 1.4}, "regsync": {"wall_s": 0.5}}, "pass"),
    ({"status": "ok", "ratios": {"regsync_wall_over_ours_plan": 0.6}, "regsync": {"wall_s": 0.5}}, "MISS"),
    ({"status": "ok", "ratios": {}, "regsync_note": "regsync rows left out: no executable"}, "n/a (no regsync)"),
    ({"status": "ok", "ratios": {}, "regsync": {"wall_s": 0.5}}, "error"),
], ids=["faster", "slower", "no-regsync", "regsync-ran-but-no-ratio"])
def test_a_missing_peer_is_not_a_failure(section: dict[str, object], status: str) -> None:
    result = {"params": {"plan_scales": [], "big_layer_size": 0}, "sections": {"refresh": section}}
    rows = [r for r in report.evaluate(result) if r["target"].startswith("No-change `plan` no slower than `regsync")]
    assert [r["status"] for r in rows] == [status]
