"""``/metrics`` of a real ``reconciler serve`` under gunicorn with several workers (the
library's multiprocess mode sums them), parsed with prometheus_client's own parser; and
the probes and metrics of Crane mode, none of which need credentials."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from reconciler.store.sqlite import SQLiteStore
from tests.support.serving import Fixture, Server, fill_store, run_serve_command, run_server

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(server: Server) -> Samples:
    resp = requests.get(server.url + "/metrics", timeout=10)
    assert resp.status_code == 200 and resp.headers["Content-Type"].startswith("text/plain")
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(resp.text) for s in family.samples}


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Fixture]]:
    root = tmp_path_factory.mktemp("metrics-srv")
    store = SQLiteStore(root / "store")
    try:
        fx = fill_store(store)
    finally:
        store.close()
    pw = root / "htpasswd"
    pw.write_text(f"alice:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n")
    with run_server(root / "store", root / "server.log", htpasswd=pw, workers=3) as srv:
        yield srv, fx


def test_metrics_sum_every_worker_and_need_no_credentials(served: tuple[Server, Fixture]) -> None:
    srv, fx = served
    before = scrape(srv)
    image = fx.images["test/docker"]["v1"]
    session = requests.Session()
    # fresh connections spread the requests over the three workers
    for _ in range(30):
        r = requests.get(f"{srv.url}/v2/test/docker/manifests/v1", timeout=10,
                         headers={"Accept": image.manifest.media_type, "Connection": "close"})
        assert r.status_code == 200
    layer = next(iter(image.all_blobs()))
    size = len(image.all_blobs()[layer])
    for _ in range(10):
        assert requests.get(f"{srv.url}/v2/test/docker/blobs/{layer}", timeout=10,
                            headers={"Connection": "close"}).status_code == 200
    for _ in range(5):
        assert requests.get(f"{srv.url}/v2/test/secret/tags/list", timeout=10,
                            headers={"Connection": "close"}).status_code == 401
    session.close()
    after = scrape(srv)

    def delta(name: str, **labels: str) -> float:
        key = (name, tuple(sorted(labels.items())))
        return after.get(key, 0.0) - before.get(key, 0.0)

    assert delta("reconciler_http_requests_total", route="manifest", method="GET", status="200") == 30
    assert delta("reconciler_http_requests_total", route="blob", method="GET", status="200") == 10
    assert delta("reconciler_http_requests_total", route="tags", method="GET", status="401") == 5
    assert delta("reconciler_http_response_bytes_total", route="blob") == 10 * size
    assert delta("reconciler_http_request_duration_seconds_count", route="manifest") == 30
    assert delta("reconciler_http_request_duration_seconds_bucket", route="manifest", le="+Inf") == 30
    assert after[("reconciler_served_repositories", (("protected", "false"),))] == 4
    assert after[("reconciler_served_repositories", (("protected", "true"),))] == 1
    assert after[("reconciler_served_tags", ())] == 6
    # the values came from several worker processes: each keeps its own file
    log = srv.log()
    assert log.count("Booting worker") >= 3


def test_crane_mode_answers_probes_and_metrics_without_credentials(tmp_path: Path) -> None:
    data = tmp_path / "crane"
    data.mkdir()
    (data / "app.json").write_text(json.dumps({
        "version": 4, "repo-registry-id": "team/app", "url": "http://127.0.0.1:9/team/app/", "protected": False,
        "type": "pulp-docker", "schema2_data": [], "manifest_list_data": [], "manifest_list_amd64_tags": {}}))
    pw = tmp_path / "htpasswd"
    pw.write_text(f"alice:{bcrypt.hashpw(b'pw', bcrypt.gensalt(4)).decode()}\n")
    args = ["serve", "--crane-data-dir", str(data), "--crane-poll-interval", "0", "--htpasswd", str(pw)]
    with run_serve_command(args, tmp_path / "crane.log", workers=2) as srv:
        assert requests.get(srv.url + "/healthz", timeout=10).text == "ok\n"
        ready = requests.get(srv.url + "/readyz", timeout=10)
        assert (ready.status_code, ready.text) == (200, "ready\n")
        for _ in range(4):
            requests.get(srv.url + "/v2/team/app/tags/list", timeout=10, headers={"Connection": "close"},
                         allow_redirects=False)
        samples = scrape(srv)
        assert samples[("reconciler_http_requests_total", (("method", "GET"), ("route", "readyz"),
                                                            ("status", "200")))] == 1
        assert sum(v for (name, labels), v in samples.items()
                   if name == "reconciler_http_requests_total" and ("route", "tags") in labels) == 4
        # the data directory gone: not ready (a load balancer stops sending), still alive
        data.rename(tmp_path / "away")
        ready = requests.get(srv.url + "/readyz", timeout=10)
        assert ready.status_code == 503 and "cannot read the data directory" in ready.text
        assert requests.get(srv.url + "/healthz", timeout=10).status_code == 200
