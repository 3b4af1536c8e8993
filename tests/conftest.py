"""Shared fixtures: a fresh store per test (every backend the machine has), and a CLI runner."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from reconciler.store.sqlite import SQLiteStore

REPO_ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(params=["sqlite"])
def store(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """A fresh store; the conformance suite runs once per backend."""
    s = SQLiteStore(tmp_path / "store")
    yield s
    s.close()


@pytest.fixture
def run_cli(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Run ``python -m reconciler`` in a subprocess (real exit codes, real stdout)."""

    def run(*args: str, store: Path | None = None, check: bool = False, input: str | None = None,
            env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        cmd = [sys.executable, "-m", "reconciler"]
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
