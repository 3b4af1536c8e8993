"""The PostgreSQL store's connections stay bounded (issue 20, "bounded PostgreSQL connections").

An apply of 40 repositories synced from a real registry, watched from outside through
``pg_stat_activity``: before the pool, every download thread kept a connection until the
process exited (250 for 40 repositories, "too many clients" against the default
``max_connections=100``). The bound asserted here is the one docs/deployment.md states:
the pool (``COMMAND_CONNECTIONS``) plus the apply lock's own session.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from reconciler.store.postgres import PostgresStore
from tests.support.cli import RunCli
from tests.support.imagegen import build_image
from tests.support.pusher import push_image
from tests.support.registry import RunningRegistry

pytestmark = pytest.mark.integration

REPOSITORIES = 40
#: docs/deployment.md, "Connections": a command's pool (8) plus its apply lock (1)
DOCUMENTED_BOUND = 8 + 1


class PeakConnections:
    """Polls the number of other sessions on one database until stopped; keeps the peak."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self._stop.is_set():
                row = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                                   "AND pid <> pg_backend_pid()").fetchone()
                self.peak = max(self.peak, int(row[0]) if row else 0)
                time.sleep(0.01)

    def __enter__(self) -> PeakConnections:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)


def test_apply_of_40_repositories_stays_within_the_documented_connections(
        registry: RunningRegistry, postgres_url: str, tmp_path: Path, run_cli: RunCli, repo_name: str) -> None:
    lines = ["version: 1", "registries:", "  up:", f"    url: {registry.url}", "    tls_verify: false",
             "repositories:"]
    for i in range(REPOSITORIES):
        upstream = f"{repo_name}/r{i}"
        push_image(registry.url, upstream, build_image(f"conn-{i}", layers=3), tags=["latest", "v1"])
        lines += [f"  r{i}:", "    feed: up", f"    upstream_name: {upstream}", f"    publish: conn/r{i}"]
    desired = tmp_path / "repos.yaml"
    desired.write_text("\n".join(lines) + "\n")
    blobs = tmp_path / "blobs"

    with PeakConnections(postgres_url) as watch:
        proc = run_cli("--blobs", str(blobs), "apply", "-f", str(desired), store=postgres_url)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert watch.peak <= DOCUMENTED_BOUND, f"{watch.peak} connections at once, documented: {DOCUMENTED_BOUND}"

    store = PostgresStore(postgres_url, blobs=blobs)
    try:
        pubs = store.publication_list()
        assert len(pubs) == REPOSITORIES and all(p.version == 1 for p in pubs)
        assert store.check(verify_content=False).ok
    finally:
        store.close()
