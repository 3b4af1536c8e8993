"""What a plan says about what it could not do, through the real CLI (offline): errors at
their repos.yaml entry (FILE:LINE:COL) with the rest still planned, a JSON error
document for CI steps reading stdout, empty-filter warnings, the Markdown size cap."""

from __future__ import annotations

import json
from pathlib import Path

from reconciler.plan.model import FORMAT_VERSION
from tests.conftest import REPO_ROOT
from tests.support.cli import RunCli

IMAGES = REPO_ROOT / "examples" / "images"


def test_a_copy_of_a_tag_the_source_will_not_have_is_located_and_the_rest_is_planned(
        tmp_path: Path, run_cli: RunCli) -> None:
    yaml = tmp_path / "repos.yaml"
    yaml.write_text(f"""version: 1
repositories:
  base:
    uploads:
      - {{file: {IMAGES}/hello-v2s2.tar, tag: latest}}
  prod:
    copy:
      - from: base
        tags: [latest, lastest]
""")
    store = tmp_path / "store"
    plan = run_cli("plan", "-f", str(yaml), store=store)
    assert plan.returncode == 1
    assert (f"Error: {yaml}:9:24: prod: copies tag 'lastest' from 'base', which will not have it after this plan "
            "(it has latest)") in plan.stdout, plan.stdout
    assert "+ upload" in plan.stdout  # the rest of the plan is still shown
    assert "Plan incomplete: 1 error in what repos.yaml asks." in plan.stdout and "No changes." not in plan.stdout
    as_json = run_cli("plan", "-f", str(yaml), "--json", store=store)
    doc = json.loads(as_json.stdout)
    assert as_json.returncode == 1 and doc["format_version"] == FORMAT_VERSION
    assert doc["errors"] == [{"kind": "semantic", "repo": "prod", "where": f"{yaml}:9:24",
                              "message": "copies tag 'lastest' from 'base', which will not have it after this plan "
                                         "(it has latest)",
                              "hint": "fix the tag name in repos.yaml or make the source repository provide it"}]


def test_plan_json_prints_an_error_document_when_there_is_no_plan(tmp_path: Path, run_cli: RunCli) -> None:
    yaml = tmp_path / "repos.yaml"
    yaml.write_text("version: 1\nrepositories:\n  web:\n    feed: nowhere\n    upstream_name: lib/web\n")
    proc = run_cli("plan", "-f", str(yaml), "--json", store=tmp_path / "store")
    assert proc.returncode == 1
    doc = json.loads(proc.stdout)  # `jq` in a CI step keeps working
    assert doc["format_version"] == FORMAT_VERSION
    [error] = doc["errors"]
    assert error["kind"] == "config" and error["where"] == f"{yaml}:4:11" and "unknown feed 'nowhere'" in error["message"]
    assert "error: " in proc.stderr  # and the humans reading the log still see it
    missing = run_cli("plan", "-f", str(tmp_path / "nope.yaml"), "--json", store=tmp_path / "store")
    assert json.loads(missing.stdout)["errors"][0]["message"].endswith("nope.yaml: no such file")


def test_markdown_fits_a_pull_request_comment(tmp_path: Path, run_cli: RunCli) -> None:
    yaml = tmp_path / "repos.yaml"
    text = "version: 1\nrepositories:\n"
    for i in range(1500):
        text += f"  repository-with-a-long-name-{i:04d}:\n    uploads:\n      - {{file: {IMAGES}/hello-v2s2.tar, tag: v{i}}}\n"
    yaml.write_text(text)
    store = tmp_path / "store"
    saved = tmp_path / "plan.json"
    md = run_cli("plan", "-f", str(yaml), "--markdown", "--out", str(saved), store=store)
    assert md.returncode == 0, md.stderr
    assert len(md.stdout) <= 60_000
    assert f"the full plan is in `{saved}`" in md.stdout
    assert "- `+` `repository-with-a-long-name-0000`: +2 ~0 -0" in md.stdout
    assert "more changed repositories: see the full plan" in md.stdout  # what did not fit is counted
    assert md.stdout.splitlines()[2].startswith("**Plan: 3000 to add")
