"""Shared fixtures: a fresh store per test on every backend (SQLite; PostgreSQL on a server
the session starts itself), and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from reconciler.store.protocol import Store
from reconciler.store.sqlite import SQLiteStore
from tests.support.cli import RunCli
from tests.support.postgres import PostgresServer

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the whole session (started on first use)."""
    started = time.monotonic()
    server = PostgresServer.start()
    # how long the server takes to come up shows in `pytest -rA` / the report
    print(f"PostgreSQL test server on 127.0.0.1:{server.port} up in {time.monotonic() - started:.2f} s")
    yield server
    server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """An empty, migrated store database on the session's server (emptied after, for reuse)."""
    url = postgres_server.checkout()
    yield url
    postgres_server.checkin(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """A fresh store; the conformance suite runs once per backend."""
    s: Store
    if request.param == "sqlite":
        s = SQLiteStore(tmp_path / "store")
    else:
        from reconciler.store.postgres import PostgresStore

        s = PostgresStore(request.getfixturevalue("postgres_url"), blobs=tmp_path / "blobs")
    yield s
    s.close()


@pytest.fixture
def run_cli(tmp_path: Path) -> RunCli:
    """Run ``python -m reconciler`` in a subprocess (real exit codes, real stdout);
    ``module``: another entry point that runs the same CLI (``tests.support.crashpoints``)."""

    def run(*args: str, store: Path | str | None = None, check: bool = False, input: str | None = None,
            env: dict[str, str] | None = None, cwd: Path | None = None,
            module: str = "reconciler") -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", module]
        if store is not None:
            cmd += ["--store", str(store)]
        # the checkout under test, not whatever reconciler another venv has installed
        pythonpath = os.pathsep.join(filter(None, [str(REPO_ROOT), os.environ.get("PYTHONPATH")]))
        full_env = {**os.environ, "NO_COLOR": "1", "PYTHONPATH": pythonpath, **(env or {})}
        proc = subprocess.run(cmd + list(args), capture_output=True, text=True, input=input, env=full_env,
                              cwd=cwd or tmp_path, timeout=300)
        if check and proc.returncode != 0:
            raise AssertionError(f"{cmd + list(args)} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
        return proc

    return run
