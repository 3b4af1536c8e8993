"""The plan command's outputs and exit codes on the offline demo (no network)."""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import REPO_ROOT
from tests.support.cli import RunCli

DEMO = REPO_ROOT / "examples" / "demo.yaml"


def test_plan_outputs_and_detailed_exit_codes(tmp_path: Path, run_cli: RunCli) -> None:
    store = tmp_path / "store"
    as_json = run_cli("plan", "-f", str(DEMO), "--json", "--detailed-exitcode", "--out", str(tmp_path / "p.json"),
                      store=store)
    assert as_json.returncode == 2, as_json.stderr
    doc = json.loads(as_json.stdout)
    assert doc["format_version"] == 2 and doc["summary"]["remove"] == 0 and doc["summary"]["add"] > 0
    assert json.loads((tmp_path / "p.json").read_text()) == doc
    md = run_cli("plan", "-f", str(DEMO), "--markdown", store=store)
    assert md.returncode == 0 and md.stdout.startswith("### reconciler plan") and "| `+` | `containers` |" in md.stdout
    assert "\x1b[" not in run_cli("plan", "-f", str(DEMO), store=store).stdout  # NO_COLOR, not a TTY
    applied = run_cli("apply", str(tmp_path / "p.json"), store=store)
    assert applied.returncode == 0, applied.stderr
    assert run_cli("plan", "-f", str(DEMO), "--detailed-exitcode", store=store).returncode == 0
    bad = run_cli("plan", "-f", str(DEMO), "--target", "nope", store=store)
    assert bad.returncode == 1 and "error: --target nope" in bad.stderr
