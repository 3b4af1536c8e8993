"""``reconciler watch`` end to end: a real git repository (commits made by the test, cloned
over ``file://``), a real distribution registry upstream behind a fault proxy, the store
lock held by another process, the metrics port scraped and parsed with prometheus_client's
own parser, and SIGTERM from the test."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from reconciler.store.sqlite import SQLiteStore
from tests.support.faultproxy import FaultProxy
from tests.support.imagegen import build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry
from tests.support.serving import REPO_ROOT, stop

pytestmark = pytest.mark.integration

IMAGES = {n: build_image(f"watch-{n}") for n in ("a", "b", "c")}
INTERVAL = 1.0


def git(*args: str, cwd: Path) -> str:
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@example.com", "GIT_COMMITTER_NAME": "t",
           "GIT_COMMITTER_EMAIL": "t@example.com"}
    return subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True, text=True).stdout.strip()


def repos_yaml(feed: str, upstream: str, tags: list[str]) -> str:
    return f"""version: 1
registries:
  up:
    url: {feed}
    tls_verify: false
    retries: 0
    timeout: 5
repositories:
  mirror:
    feed: up
    upstream_name: {upstream}
    tags: {{include: {json.dumps(tags)}}}
    publish: watch/mirror
"""


@dataclass
class Watch:
    proc: subprocess.Popen[bytes]
    log: Path

    def ticks(self) -> list[dict[str, Any]]:
        out = []
        for line in self.log.read_text(errors="replace").splitlines():
            if line.startswith("{"):
                obj = json.loads(line)
                if obj.get("message") == "tick":
                    out.append(obj)
        return out

    def wait_tick(self, pred: Callable[[dict[str, Any]], bool], timeout: float = 60.0,
                  after: int = 0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for t in self.ticks()[after:]:
                if pred(t):
                    return t
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        raise AssertionError(f"no such tick in {timeout} s; log:\n{self.log.read_text(errors='replace')[-6000:]}")

    def metrics_url(self) -> str:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            m = re.search(r"on (http://127\.0\.0\.1:\d+)", self.log.read_text(errors="replace"))
            if m:
                return m[1]
            time.sleep(0.1)
        raise AssertionError(self.log.read_text(errors="replace"))


@contextmanager
def watching(store: Path, args: list[str], log: Path) -> Iterator[Watch]:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "reconciler", "--store", str(store), "--log-format", "json", "watch", *args]
    with open(log, "wb") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=env)
    try:
        yield Watch(proc, log)
    finally:
        stop(proc)


def scrape(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(url + "/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_watch_follows_git_survives_outages_and_stops_on_sigterm(
        registry: RunningRegistry, proxy: FaultProxy, repo_name: str, tmp_path: Path) -> None:
    push_image(registry.url, repo_name, IMAGES["a"], ["1.0"])
    push_image(registry.url, repo_name, IMAGES["b"], ["2.0"])
    origin, work = tmp_path / "origin.git", tmp_path / "work"
    git("init", "--quiet", "--bare", "--initial-branch=main", str(origin), cwd=tmp_path)
    git("clone", "--quiet", str(origin), str(work), cwd=tmp_path)
    (work / "deploy").mkdir()
    (work / "deploy" / "repos.yaml").write_text(repos_yaml(proxy.url, repo_name, ["1.0"]))
    git("add", "-A", cwd=work)
    git("commit", "--quiet", "-m", "first", cwd=work)
    git("push", "--quiet", "origin", "HEAD:main", cwd=work)
    first = git("rev-parse", "HEAD", cwd=work)
    store_path = tmp_path / "store"

    args = ["--git", f"file://{origin}", "--ref", "main", "-f", "deploy/repos.yaml", "--interval", str(INTERVAL),
            "--max-backoff", "4", "--metrics-port", "0"]
    with watching(store_path, args, tmp_path / "watch.log") as w:
        # 1. the first tick applies the first commit, and records it
        t1 = w.wait_tick(lambda t: t["result"] == "applied")
        assert t1["commit"] == first and t1["drift"] == {"desired": 3}  # create, sync 1.0, publish
        store = SQLiteStore(store_path)
        try:
            assert store.version_get("mirror").tags["1.0"].digest == IMAGES["a"].digest
            version = store.version_list("mirror")[-1]
            assert version.provenance["git_commit"] == first
            assert version.provenance["desired_digest"].startswith("sha256:")
            entry = store.journal_list(1)[0]
            assert entry.id == t1["journal_id"] and entry.details["git_commit"] == first
            assert first[:12] in entry.command
        finally:
            store.close()

        # 2. a new commit is applied by the first tick that starts after the push
        (work / "deploy" / "repos.yaml").write_text(repos_yaml(proxy.url, repo_name, ["1.0", "2.0"]))
        git("commit", "--quiet", "-am", "add 2.0", cwd=work)
        git("push", "--quiet", "origin", "HEAD:main", cwd=work)
        second = git("rev-parse", "HEAD", cwd=work)
        pushed = time.time()
        t2 = w.wait_tick(lambda t: t["commit"] == second)
        assert t2["result"] == "applied" and t2["drift"] == {"desired": 2}  # sync 2.0, publish
        started_after = [t for t in w.ticks() if _started(t) >= pushed]
        assert started_after[0]["commit"] == second, "the first tick after the push did not take the commit"

        # 3. a tag moved upstream is upstream drift, corrected without any commit
        push_image(registry.url, repo_name, IMAGES["c"], ["1.0"])
        t3 = w.wait_tick(lambda t: t["result"] == "applied" and t["commit"] == second and "upstream" in t["drift"])
        assert t3["drift"] == {"upstream": 2}

        # 4. another writer holding the store lock is waited for, not run over; the hand
        #    change it makes (a one-off tag removal) is manual drift the next apply undoes
        n = len(w.ticks())
        holder = SQLiteStore(store_path)
        try:
            with holder.lock(10):
                base = holder.version_get("mirror")
                holder.version_commit("mirror", base=base.number, content=base.content,
                                      tags={k: v for k, v in base.tags.items() if k != "2.0"},
                                      operation="remove tag")
                time.sleep(3 * INTERVAL)
                assert all(t["result"] != "applied" for t in w.ticks()[n:]), "an apply ran under our lock"
        finally:
            holder.close()
        t4 = w.wait_tick(lambda t: t["result"] == "applied", after=n)
        assert t4["drift"] == {"manual": 2}  # sync 2.0 again, publish the new version

        # 5. an upstream outage: ticks fail, waits double up to --max-backoff, no spinning
        n = len(w.ticks())
        proxy.add(".", "status", times=None, status=503)

        def failed_for(k: int) -> Callable[[dict[str, Any]], bool]:
            """The k-th failed tick in a row."""
            return lambda t: t["result"] == "failed" and t["failures"] == k

        failed = [w.wait_tick(failed_for(k), after=n) for k in (1, 2, 3)]
        assert [t["next_in_s"] for t in failed] == [2.0, 4.0, 4.0]
        assert all("refreshing upstream" in " ".join(t["errors"]) for t in failed)
        gap = _started(failed[2]) - _started(failed[1])
        assert gap >= 4.0, f"retried after {gap:.1f} s, before the 4 s backoff"
        proxy.clear()
        w.wait_tick(lambda t: t["result"] == "no_changes", after=n)

        # 6. a git outage: ticks fail on git, keep reconciling the last commit, and recover
        n = len(w.ticks())
        origin.rename(tmp_path / "origin-away.git")
        t6 = w.wait_tick(lambda t: t["result"] == "failed", after=n)
        assert "git fetch" in " ".join(t6["errors"]) and t6["commit"] == second
        (tmp_path / "origin-away.git").rename(origin)
        w.wait_tick(lambda t: t["result"] == "no_changes", after=len(w.ticks()))

        # 7. the metrics port, parsed with prometheus_client's own parser
        metrics = scrape(w.metrics_url())
        assert metrics[("reconciler_watch_applies_total", (("result", "ok"),))] >= 4
        assert metrics[("reconciler_watch_ticks_total", (("result", "failed"),))] >= 4
        assert metrics[("reconciler_watch_drift_corrected_total", (("cause", "upstream"),))] == 2
        assert metrics[("reconciler_watch_drift_corrected_total", (("cause", "manual"),))] == 2
        assert metrics[("reconciler_watch_drift_corrected_total", (("cause", "desired"),))] == 5
        assert metrics[("reconciler_watch_last_successful_apply_timestamp_seconds", ())] > pushed
        assert metrics[("reconciler_watch_consecutive_failures", ())] == 0
        assert metrics[("reconciler_watch_apply_duration_seconds_count", ())] >= 4
        assert requests.get(w.metrics_url() + "/healthz", timeout=5).status_code == 200
        assert requests.get(w.metrics_url() + "/readyz", timeout=5).status_code == 200

        # 8. SIGTERM: exits 0, cleanly
        w.proc.send_signal(signal.SIGTERM)
        assert w.proc.wait(timeout=30) == 0
        assert '"message": "stopped"' in w.log.read_text()


def _started(tick: dict[str, Any]) -> float:
    return float(tick["started"])
