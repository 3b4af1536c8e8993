"""An apply that loses its lock stops at once (issue 20).

A real ``reconciler apply`` process on PostgreSQL syncs six repositories from a real
registry behind a fault proxy that holds one blob download; meanwhile the lock's session
is ended (what a database restart or ``pg_terminate_backend`` does). The apply must start
no further download, print its summary (``Apply INTERRUPTED``) with the reason, exit 1,
and journal the run ``interrupted``. Before, it went on fetching tag by tag, printed only
the lock error, and its journal entry stayed ``running`` until the next apply.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import pytest

from reconciler.store.postgres import PostgresStore
from tests.conftest import REPO_ROOT
from tests.support.faultproxy import FaultProxy
from tests.support.imagegen import build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.integration


def _end_lock_session(url: str) -> int:
    """Terminate the apply lock's session (its application_name says ``reconciler pid``)."""
    with psycopg.connect(url, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = "
                            "current_database() AND application_name LIKE 'reconciler pid %'").fetchall()
    return len(rows)


def test_an_apply_that_lost_its_lock_stops_prints_its_summary_and_journals_interrupted(
        registry: RunningRegistry, proxy: FaultProxy, postgres_url: str, tmp_path: Path, repo_name: str) -> None:
    lines = ["version: 1", "registries:", "  up:", f"    url: {proxy.url}", "    tls_verify: false",
             "repositories:"]
    for i in range(6):
        upstream = f"{repo_name}/r{i}"
        push_image(registry.url, upstream, build_image(f"lost-{i}", layers=3), tags=["latest"])
        lines += [f"  r{i}:", "    feed: up", f"    upstream_name: {upstream}", f"    publish: lost/r{i}"]
    desired = tmp_path / "repos.yaml"
    desired.write_text("\n".join(lines) + "\n")
    blobs = tmp_path / "blobs"
    held = proxy.add(r"^GET /v2/.*/blobs/", "hold")

    env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": str(REPO_ROOT)}
    cmd = [sys.executable, "-m", "reconciler", "--store", postgres_url, "--blobs", str(blobs), "apply", "-f",
           str(desired)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=tmp_path)
    try:
        assert held.held.wait(60), "the apply never reached a blob download"
        # the other downloads run on (the held one waits): let them finish, or one still in
        # flight when the lock goes is logged after it, on a loaded machine (seen in a suite run)
        seen, deadline = -1, time.monotonic() + 30
        while len(proxy.log) != seen and time.monotonic() < deadline:
            seen = len(proxy.log)
            time.sleep(0.5)
        assert _end_lock_session(postgres_url) == 1
        lost_at = len(proxy.log)
        time.sleep(2.5)  # the lock's watchdog pings every second
        held.release()
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 1, out + err
    assert "Apply INTERRUPTED:" in out, out + err
    assert "Stopped: the apply lock" in err and "was lost" in err, err
    # nothing downloaded after the loss (today's code fetched every tag again, one by one)
    after = [line for line in proxy.log[lost_at:] if "/blobs/" in line]
    assert after == [], after

    store = PostgresStore(postgres_url, blobs=blobs)
    try:
        entry = store.journal_list(limit=1)[0]
        assert entry.result == "interrupted" and entry.finished is not None
        assert "was lost" in str(entry.details.get("stopped"))
        assert store.check(verify_content=False).ok
    finally:
        store.close()
