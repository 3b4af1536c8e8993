"""A store path that does not exist (a typo in --store): ``plan`` plans against an empty
store and says so, read commands fail clearly, and none of them creates anything."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import REPO_ROOT
from tests.support.cli import RunCli

DEMO = REPO_ROOT / "examples" / "demo.yaml"


def test_plan_on_a_missing_store_creates_nothing_and_says_so(tmp_path: Path, run_cli: RunCli) -> None:
    typo = tmp_path / "typo"
    plan = run_cli("plan", "-f", str(DEMO), "--detailed-exitcode", "--out", str(tmp_path / "p.json"), store=typo)
    assert plan.returncode == 2, plan.stderr
    assert f"store {typo} does not exist yet: planning against an empty store" in plan.stderr
    assert "+ containers" in plan.stdout
    assert not typo.exists()
    # the plan made against the empty store applies to the store apply creates there
    applied = run_cli("apply", str(tmp_path / "p.json"), store=typo)
    assert applied.returncode == 0, applied.stdout + applied.stderr
    again = run_cli("plan", "-f", str(DEMO), "--detailed-exitcode", store=typo)
    assert again.returncode == 0 and "does not exist" not in again.stderr


def test_drift_on_a_missing_store_compares_with_an_empty_one_and_creates_nothing(
        tmp_path: Path, run_cli: RunCli) -> None:
    typo = tmp_path / "typo"
    drift = run_cli("drift", "-f", str(DEMO), "--detailed-exitcode", store=typo)
    assert drift.returncode == 2, drift.stdout + drift.stderr  # all of repos.yaml is still to be applied
    assert f"store {typo} does not exist yet: comparing against an empty store" in drift.stderr
    assert not typo.exists()


@pytest.mark.parametrize("args", [
    ["repo", "list"], ["repo", "show", "web"], ["repo", "history", "web"], ["history"], ["store", "check"],
    ["store", "gc"], ["serve", "--port", "0"], ["export", "web", "-o", "out.tar"], ["tag", "web", "v1", "sha256:" + "a" * 64],
    ["verify", "web", "--key", "k.pub"],
], ids=lambda a: "-".join(a[:2]))
def test_read_commands_on_a_missing_store_fail_and_create_nothing(args: list[str], tmp_path: Path,
                                                                 run_cli: RunCli) -> None:
    typo = tmp_path / "typo"
    proc = run_cli(*args, store=typo)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert f"error: there is no store at {typo}" in proc.stderr
    assert "hint: check --store / RECONCILER_STORE" in proc.stderr
    assert not typo.exists()
